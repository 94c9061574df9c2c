/* See bench_shim.h. Compiled with -mavx2 -mfma; the VNNI loop lives in bench_vnni.c. */
#define _GNU_SOURCE
#include "bench_shim.h"

#include <immintrin.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <time.h>

#include "bench_time.h"

typedef struct peak_arg { double seconds; double macs; int vnni; } peak_arg;

double ibench__vnni_loop(long iters); /* bench_vnni.c: returns MACs done */

static double avx2_loop(long iters) {
    /* six chains, each with its own weight register, so no two maddubs share operands (the compiler
     * cannot merge them); 6 x (maddubs + madd + add) = 6 x 32 MACs per iteration */
    __m256i a = _mm256_set1_epi8(3), ones = _mm256_set1_epi16(1);
    __m256i b0 = _mm256_set1_epi8(1), b1 = _mm256_set1_epi8(2), b2 = _mm256_set1_epi8(3);
    __m256i b3 = _mm256_set1_epi8(4), b4 = _mm256_set1_epi8(5), b5 = _mm256_set1_epi8(6);
    __m256i c0 = _mm256_set1_epi32(0), c1 = _mm256_set1_epi32(1), c2 = _mm256_set1_epi32(2);
    __m256i c3 = _mm256_set1_epi32(3), c4 = _mm256_set1_epi32(4), c5 = _mm256_set1_epi32(5);
    for (long i = 0; i < iters; i++) {
#define M(c, b) c = _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), ones))
        M(c0, b0); M(c1, b1); M(c2, b2); M(c3, b3); M(c4, b4); M(c5, b5);
#undef M
        __asm__ volatile("" : "+x"(a), "+x"(b0), "+x"(b1), "+x"(b2), "+x"(b3), "+x"(b4), "+x"(b5));
    }
    __m256i s = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                 _mm256_add_epi32(c4, c5));
    volatile int sink = _mm256_extract_epi32(s, 0);
    (void)sink;
    return (double)iters * 6 * 32;
}

static void *peak_thread(void *p) {
    peak_arg *a = p;
    long iters = 1 << 16;
    double t0 = now(), macs = 0;
    while (now() - t0 < a->seconds) macs += a->vnni ? ibench__vnni_loop(iters) : avx2_loop(iters);
    a->macs = macs / (now() - t0); /* MAC/s of this thread */
    return NULL;
}

static double peak(int threads, double seconds, int vnni) {
    if (threads < 1) threads = 1;
    pthread_t th[256];
    peak_arg args[256];
    if (threads > 256) threads = 256;
    for (int i = 0; i < threads; i++) {
        args[i] = (peak_arg){seconds, 0, vnni};
        pthread_create(&th[i], NULL, peak_thread, &args[i]);
    }
    double total = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        total += args[i].macs;
    }
    return total * 2 / 1e9;
}

double ibench_avx2_int8_peak_gops(int threads, double seconds) { return peak(threads, seconds, 0); }

double ibench_vnni_int8_peak_gops(int threads, double seconds) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512vnni") || !__builtin_cpu_supports("avx512bw")) return 0;
    return peak(threads, seconds, 1);
}

typedef struct bw_arg { const uint8_t *p; size_t n; pthread_barrier_t *bar; double t; } bw_arg;

static void *bw_thread(void *p) {
    bw_arg *a = p;
    pthread_barrier_wait(a->bar);
    double t0 = now();
    __m256i x0 = _mm256_setzero_si256(), x1 = x0, x2 = x0, x3 = x0;
    for (size_t i = 0; i + 128 <= a->n; i += 128) {
        x0 = _mm256_xor_si256(x0, _mm256_load_si256((const __m256i *)(a->p + i)));
        x1 = _mm256_xor_si256(x1, _mm256_load_si256((const __m256i *)(a->p + i + 32)));
        x2 = _mm256_xor_si256(x2, _mm256_load_si256((const __m256i *)(a->p + i + 64)));
        x3 = _mm256_xor_si256(x3, _mm256_load_si256((const __m256i *)(a->p + i + 96)));
    }
    volatile int sink = _mm256_extract_epi32(_mm256_xor_si256(_mm256_xor_si256(x0, x1), _mm256_xor_si256(x2, x3)), 1);
    (void)sink;
    a->t = now() - t0;
    return NULL;
}

double ibench_read_bandwidth_gbs(int threads, size_t bytes, int reps) {
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    bytes &= ~(size_t)(128 * threads - 1);
    uint8_t *buf = NULL;
    if (posix_memalign((void **)&buf, 4096, bytes) != 0) return 0;
    memset(buf, 1, bytes); /* fault the pages in */
    double best = 0;
    for (int r = 0; r < reps; r++) {
        pthread_t th[256];
        bw_arg args[256];
        pthread_barrier_t bar;
        pthread_barrier_init(&bar, NULL, (unsigned)threads);
        size_t part = bytes / threads;
        for (int i = 0; i < threads; i++) {
            args[i] = (bw_arg){buf + i * part, part, &bar, 0};
            pthread_create(&th[i], NULL, bw_thread, &args[i]);
        }
        double tmax = 0;
        for (int i = 0; i < threads; i++) {
            pthread_join(th[i], NULL);
            if (args[i].t > tmax) tmax = args[i].t;
        }
        pthread_barrier_destroy(&bar);
        double gbs = bytes / tmax / 1e9;
        if (gbs > best) best = gbs;
    }
    free(buf);
    return best;
}

/* ------------------------------------------------------------------ oneDNN */
#ifdef ISTHMUS_HAVE_DNNL
#include <oneapi/dnnl/dnnl.h>

typedef struct dnnl_h {
    dnnl_engine_t eng;
    dnnl_stream_t st;
    dnnl_primitive_t prim;
    dnnl_memory_t src, wei, dst;
    void *bufs[3];
} dnnl_h;

int ibench_dnnl_available(void) { return 1; }

const char *ibench_dnnl_info(void) {
    static char info[128];
    const dnnl_version_t *v = dnnl_version();
    snprintf(info, sizeof info, "oneDNN %d.%d.%d (%s)", v->major, v->minor, v->patch, v->cpu_runtime == DNNL_RUNTIME_OMP ? "OpenMP" : "threads");
    return info;
}

#define DN(x) do { if ((x) != dnnl_success) goto fail; } while (0)

void *ibench_dnnl_create(int64_t m, int64_t n, int64_t k) {
    dnnl_h *h = calloc(1, sizeof *h);
    dnnl_memory_desc_t smd, wmd_any, wmd_plain, dmd;
    dnnl_dims_t sd = {m, k}, wd = {k, n}, dd = {m, n};
    dnnl_matmul_desc_t desc;
    dnnl_primitive_desc_t pd = NULL, rpd = NULL;
    dnnl_primitive_t reorder = NULL;
    dnnl_memory_t wplain = NULL;
    DN(dnnl_engine_create(&h->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&h->st, h->eng, dnnl_stream_default_flags));
    DN(dnnl_memory_desc_init_by_tag(&smd, 2, sd, dnnl_u8, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&wmd_any, 2, wd, dnnl_s8, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&wmd_plain, 2, wd, dnnl_s8, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&dmd, 2, dd, dnnl_s32, dnnl_ab));
    DN(dnnl_matmul_desc_init(&desc, &smd, &wmd_any, NULL, &dmd));
    DN(dnnl_primitive_desc_create(&pd, &desc, NULL, h->eng, NULL));
    const dnnl_memory_desc_t *wmd = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    DN(dnnl_memory_create(&h->src, &smd, h->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&h->wei, wmd, h->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&h->dst, &dmd, h->eng, DNNL_MEMORY_ALLOCATE));
    DN(dnnl_memory_create(&wplain, &wmd_plain, h->eng, DNNL_MEMORY_ALLOCATE));
    void *p;
    DN(dnnl_memory_get_data_handle(h->src, &p));
    for (int64_t i = 0; i < m * k; i++) ((uint8_t *)p)[i] = (uint8_t)(i * 7 + 3);
    DN(dnnl_memory_get_data_handle(wplain, &p));
    for (int64_t i = 0; i < k * n; i++) ((int8_t *)p)[i] = (int8_t)((i * 13) % 255 - 127);
    DN(dnnl_reorder_primitive_desc_create(&rpd, &wmd_plain, h->eng, wmd, h->eng, NULL));
    DN(dnnl_primitive_create(&reorder, rpd));
    dnnl_exec_arg_t rargs[2] = {{DNNL_ARG_FROM, wplain}, {DNNL_ARG_TO, h->wei}};
    DN(dnnl_primitive_execute(reorder, h->st, 2, rargs));
    DN(dnnl_stream_wait(h->st));
    DN(dnnl_primitive_create(&h->prim, pd));
    dnnl_primitive_destroy(reorder);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_primitive_desc_destroy(pd);
    dnnl_memory_destroy(wplain);
    return h;
fail:
    if (reorder) dnnl_primitive_destroy(reorder);
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (wplain) dnnl_memory_destroy(wplain);
    ibench_dnnl_destroy(h);
    return NULL;
}

int ibench_dnnl_run(void *handle) {
    dnnl_h *h = handle;
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, h->src}, {DNNL_ARG_WEIGHTS, h->wei}, {DNNL_ARG_DST, h->dst}};
    if (dnnl_primitive_execute(h->prim, h->st, 3, args) != dnnl_success) return -1;
    return dnnl_stream_wait(h->st) == dnnl_success ? 0 : -1;
}

void ibench_dnnl_destroy(void *handle) {
    dnnl_h *h = handle;
    if (!h) return;
    if (h->prim) dnnl_primitive_destroy(h->prim);
    if (h->src) dnnl_memory_destroy(h->src);
    if (h->wei) dnnl_memory_destroy(h->wei);
    if (h->dst) dnnl_memory_destroy(h->dst);
    if (h->st) dnnl_stream_destroy(h->st);
    if (h->eng) dnnl_engine_destroy(h->eng);
    free(h);
}
#else
int ibench_dnnl_available(void) { return 0; }
const char *ibench_dnnl_info(void) { return "oneDNN not built in (install libdnnl-dev and rebuild)"; }
void *ibench_dnnl_create(int64_t m, int64_t n, int64_t k) { (void)m; (void)n; (void)k; return NULL; }
int ibench_dnnl_run(void *h) { (void)h; return -1; }
void ibench_dnnl_destroy(void *h) { (void)h; }
#endif
