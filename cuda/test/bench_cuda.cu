/* bench_cuda: times libisthmus_cuda's GEMM families on the issue's shapes, and the device's copy bandwidth in the
 * same run (the ceiling for weight streaming).
 *
 *   bench_cuda [--json FILE] [--iters N] [--quick]
 *
 * Method: CUDA events around every call, median / min / max over --iters calls (after 5 warm-up calls), each call
 * on the next of several buffer sets whose total exceeds 2x the L2 (the H200's is 60 MB), so weights come from HBM.
 * TOPS = 2 M N K / t. Weight GB/s = N K / t (bytes of W read once). Copy bandwidth: a D2D copy of 1 GiB,
 * counted as 2 * bytes / t (read + write, what the memory system moves); "% copy" = weight GB/s over that.
 * Output y is S32 (what torch._int_mm returns), plus one F32 per-channel run with AUTO. */
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "isthmus_cuda.h"

#define OK(call)                                                                                             \
    do {                                                                                                     \
        isthmus_cuda_status s_ = (call);                                                                     \
        if (s_ != ISTHMUS_CUDA_OK) {                                                                         \
            fprintf(stderr, "bench_cuda: %s failed (%d): %s\n", #call, (int)s_, isthmus_cuda_last_error());  \
            exit(2);                                                                                         \
        }                                                                                                    \
    } while (0)

struct stats {
    double med, min, max;
};

static stats summarize(std::vector<float> &ms) {
    std::sort(ms.begin(), ms.end());
    return {ms[ms.size() / 2], ms.front(), ms.back()};
}

static void *stream;

/* times fn(i) for warm-up + iters calls, one event pair per call */
template <typename F>
static stats time_calls(int iters, F fn) {
    std::vector<void *> ev(2 * iters);
    for (auto &e : ev) OK(isthmus_cuda_event_create(0, &e));
    for (int i = 0; i < 5; i++) fn(i);
    for (int i = 0; i < iters; i++) {
        OK(isthmus_cuda_event_record(0, ev[2 * i], stream));
        fn(i);
        OK(isthmus_cuda_event_record(0, ev[2 * i + 1], stream));
    }
    OK(isthmus_cuda_stream_synchronize(0, stream));
    std::vector<float> ms(iters);
    for (int i = 0; i < iters; i++) OK(isthmus_cuda_event_elapsed_ms(0, ev[2 * i], ev[2 * i + 1], &ms[i]));
    for (auto &e : ev) OK(isthmus_cuda_event_destroy(0, e));
    return summarize(ms);
}

struct record {
    std::string shape, kernel, variant, ydtype;
    int64_t m, n, k;
    stats t;
    double tops, wgbs, pct_copy;
};

int main(int argc, char **argv) {
    const char *json = nullptr;
    int iters = 50;
    bool quick = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--iters") && i + 1 < argc) iters = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--quick")) quick = true;
    }
    if (iters < 3) iters = 3;
    int32_t count = 0;
    OK(isthmus_cuda_device_count(&count));
    if (count == 0) {
        fprintf(stderr, "bench_cuda: no GPU: %s\n", isthmus_cuda_last_error());
        return 77;
    }
    isthmus_cuda_device_props p;
    OK(isthmus_cuda_device_get_props(0, &p));
    int32_t rt = 0, drv = 0;
    OK(isthmus_cuda_versions(&rt, &drv));
    printf("device: %s sm_%d%d, %d SMs, L2 %lld MiB, runtime %d, driver %d\n", p.name, p.major, p.minor,
           p.multiprocessors, (long long)(p.l2_bytes >> 20), rt, drv);
    OK(isthmus_cuda_stream_create(0, &stream));

    /* copy bandwidth */
    const int64_t cbytes = quick ? ((int64_t)256 << 20) : ((int64_t)1 << 30);
    void *src, *dst;
    OK(isthmus_cuda_malloc(0, cbytes, &src));
    OK(isthmus_cuda_malloc(0, cbytes, &dst));
    OK(isthmus_cuda_memset_async(0, src, 1, cbytes, stream));
    stats ct = time_calls(quick ? 5 : 20, [&](int) {
        OK(isthmus_cuda_memcpy_async(0, dst, src, cbytes, ISTHMUS_CUDA_COPY_D2D, stream));
    });
    const double copy_gbs = 2.0 * cbytes / (ct.med * 1e-3) / 1e9;
    printf("copy D2D %lld MiB: median %.3f ms -> %.1f GB/s (read + write)\n", (long long)(cbytes >> 20), ct.med, copy_gbs);
    OK(isthmus_cuda_free(0, src));
    OK(isthmus_cuda_free(0, dst));

    struct shape {
        const char *name;
        int64_t m, n, k;
    };
    const shape shapes[] = {
        {"8192x8192x8192", 8192, 8192, 8192}, {"512x14336x4096", 512, 14336, 4096}, {"1x14336x4096", 1, 14336, 4096},
        {"8x14336x4096", 8, 14336, 4096},     {"16x14336x4096", 16, 14336, 4096},
    };
    std::vector<record> out;
    std::vector<int8_t> host;
    for (const shape &s : shapes) {
        if (quick && s.m == 8192) continue;
        const int64_t abytes = s.m * s.k, wbytes = s.n * s.k, ybytes = s.m * s.n * 4;
        const int64_t set = abytes + wbytes + ybytes;
        const int64_t l2 = p.l2_bytes > 0 ? p.l2_bytes : ((int64_t)60 << 20);
        int sets = (int)std::min<int64_t>(64, std::max<int64_t>(2, (2 * l2 + set - 1) / set + 1));
        std::vector<void *> A(sets), W(sets), Y(sets);
        void *sa, *sw;
        host.resize(std::max(abytes, wbytes));
        uint64_t r = 88172645463325252ull;
        for (auto &v : host) {
            r ^= r << 13, r ^= r >> 7, r ^= r << 17;
            v = (int8_t)((int)(r % 255) - 127);
        }
        for (int i = 0; i < sets; i++) {
            OK(isthmus_cuda_malloc(0, abytes, &A[i]));
            OK(isthmus_cuda_malloc(0, wbytes, &W[i]));
            OK(isthmus_cuda_malloc(0, ybytes, &Y[i]));
            OK(isthmus_cuda_memcpy_async(0, A[i], host.data(), abytes, ISTHMUS_CUDA_COPY_H2D, stream));
            OK(isthmus_cuda_memcpy_async(0, W[i], host.data(), wbytes, ISTHMUS_CUDA_COPY_H2D, stream));
        }
        std::vector<float> ones(std::max(s.m, s.n), 0.01f);
        OK(isthmus_cuda_malloc(0, s.m * 4, &sa));
        OK(isthmus_cuda_malloc(0, s.n * 4, &sw));
        OK(isthmus_cuda_memcpy_async(0, sa, ones.data(), s.m * 4, ISTHMUS_CUDA_COPY_H2D, stream));
        OK(isthmus_cuda_memcpy_async(0, sw, ones.data(), s.n * 4, ISTHMUS_CUDA_COPY_H2D, stream));
        OK(isthmus_cuda_stream_synchronize(0, stream));
        for (int fam = 0; fam <= 4; fam++) {
            isthmus_cuda_gemm_s8_args g;
            memset(&g, 0, sizeof g);
            g.device = 0, g.m = s.m, g.n = s.n, g.k = s.k, g.lda = s.k, g.ldw = s.k, g.ldy = s.n;
            g.a = (const int8_t *)A[0], g.w = (const int8_t *)W[0], g.y = Y[0];
            g.a_granularity = g.w_granularity = ISTHMUS_CUDA_SCALE_PER_ROW;
            g.y_dtype = fam == 4 ? ISTHMUS_CUDA_F32 : ISTHMUS_CUDA_S32;
            if (fam == 4) g.a_scales = (const float *)sa, g.w_scales = (const float *)sw;
            g.kernel = fam == 4 ? ISTHMUS_CUDA_GEMM_AUTO : fam;
            g.stream = stream;
            const char *variant = nullptr;
            int64_t ws = 0;
            if (isthmus_cuda_gemm_s8_select(&g, &variant) != ISTHMUS_CUDA_OK ||
                isthmus_cuda_gemm_s8_workspace_size(&g, &ws) != ISTHMUS_CUDA_OK) {
                printf("%-16s %-9s  not run: %s\n", s.name, fam == 1 ? "MMA_SYNC" : fam == 2 ? "WGMMA" : "SKINNY",
                       isthmus_cuda_last_error());
                continue;
            }
            void *wsp = nullptr;
            if (ws) OK(isthmus_cuda_malloc(0, ws, &wsp));
            g.workspace = wsp, g.workspace_size = ws;
            stats t = time_calls(iters, [&](int i) {
                g.a = (const int8_t *)A[i % sets], g.w = (const int8_t *)W[i % sets], g.y = Y[i % sets];
                OK(isthmus_cuda_gemm_s8(&g));
            });
            if (wsp) OK(isthmus_cuda_free(0, wsp));
            record rec;
            rec.shape = s.name, rec.m = s.m, rec.n = s.n, rec.k = s.k;
            rec.kernel = fam == 0 ? "AUTO" : fam == 1 ? "MMA_SYNC" : fam == 2 ? "WGMMA" : fam == 3 ? "SKINNY" : "AUTO";
            rec.variant = variant, rec.ydtype = fam == 4 ? "f32" : "s32";
            rec.t = t;
            rec.tops = 2.0 * s.m * s.n * s.k / (t.med * 1e-3) / 1e12;
            rec.wgbs = (double)wbytes / (t.med * 1e-3) / 1e9;
            rec.pct_copy = 100.0 * rec.wgbs / copy_gbs;
            printf("%-16s %-9s %-36s %s  median %9.4f ms (min %9.4f, max %9.4f)  %8.1f TOPS  %7.1f GB/s W (%5.1f%% of copy)\n",
                   s.name, rec.kernel.c_str(), variant, rec.ydtype.c_str(), t.med, t.min, t.max, rec.tops, rec.wgbs,
                   rec.pct_copy);
            out.push_back(rec);
        }
        for (int i = 0; i < sets; i++) {
            OK(isthmus_cuda_free(0, A[i]));
            OK(isthmus_cuda_free(0, W[i]));
            OK(isthmus_cuda_free(0, Y[i]));
        }
        OK(isthmus_cuda_free(0, sa));
        OK(isthmus_cuda_free(0, sw));
    }
    if (json) {
        FILE *f = fopen(json, "w");
        if (!f) {
            perror(json);
            return 2;
        }
        fprintf(f, "{\n  \"device\": \"%s\", \"sm\": %d, \"runtime\": %d, \"driver\": %d, \"iters\": %d,\n", p.name,
                p.major * 10 + p.minor, rt, drv, iters);
        fprintf(f, "  \"copy_gbs\": %.2f, \"copy_ms\": %.4f, \"copy_bytes\": %lld,\n  \"results\": [\n", copy_gbs, ct.med,
                (long long)cbytes);
        for (size_t i = 0; i < out.size(); i++) {
            const record &r = out[i];
            fprintf(f,
                    "    {\"shape\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, \"kernel\": \"%s\", \"variant\": \"%s\", "
                    "\"y\": \"%s\", \"median_ms\": %.5f, \"min_ms\": %.5f, \"max_ms\": %.5f, \"tops\": %.2f, "
                    "\"weight_gbs\": %.2f, \"pct_copy\": %.2f}%s\n",
                    r.shape.c_str(), (long long)r.m, (long long)r.n, (long long)r.k, r.kernel.c_str(), r.variant.c_str(),
                    r.ydtype.c_str(), r.t.med, r.t.min, r.t.max, r.tops, r.wgbs, r.pct_copy, i + 1 < out.size() ? "," : "");
        }
        fprintf(f, "  ]\n}\n");
        fclose(f);
    }
    OK(isthmus_cuda_stream_destroy(0, stream));
    return 0;
}
