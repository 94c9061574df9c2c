/* 2:4 pack: the exchange format (values [N][K/2], NVIDIA-order nibbles) to the panel layout of nm24.h.
 * sparse.c has validated w completely (K % 4 == 0, i0 < i1 in every group, no -128) before this runs. */
#include "nm24.h"

typedef struct nm24_sizes {
    int64_t npanel, ng, vals, idx, comp, scale, total;
} nm24_sizes;

static int sizes_of(const isthmus_sparse_matrix *w, int32_t P, nm24_sizes *s) {
    int64_t G = w->k / 4;
    s->npanel = (w->n + P - 1) / P;
    int64_t rows = s->npanel * P;
    if (rows > ISTHMUS_MAX_ELEMS / (w->k + 8)) return 0;
    if (w->dtype == ISTHMUS_DTYPE_F32) {
        s->ng = G;
        s->vals = sparse_align64(rows * G * 2 * 4);
        s->idx = sparse_align64(rows * G);
        s->comp = s->scale = 0;
    } else {
        s->ng = (G + 1) / 2;
        s->vals = sparse_align64(rows * s->ng * 4);
        s->idx = sparse_align64(rows * s->ng);
        s->comp = sparse_align64(rows * 4);
        s->scale = sparse_align64(rows * 4);
    }
    s->total = SPARSE_HEADER + s->vals + s->idx + s->comp + s->scale;
    return 1;
}

int nm24_header_ok(const sparse_hdr *h, int32_t P) {
    if (!sparse_shape_ok(h) || h->format != ISTHMUS_SPARSE_2_4 || h->br != 1 || h->bc != 1 || h->layout != P ||
        h->k % 4 || h->nnz != h->n * (h->k / 2))
        return 0;
    isthmus_sparse_matrix w = {.n = h->n, .k = h->k, .format = ISTHMUS_SPARSE_2_4, .dtype = h->dtype};
    nm24_sizes s;
    if (!sizes_of(&w, P, &s)) return 0;
    return h->total == s.total && h->off[0] == SPARSE_HEADER && h->off[1] == h->off[0] + s.vals &&
           h->off[2] == h->off[1] + s.idx && h->off[3] == h->off[2] + s.comp && h->off[4] == 0 && h->off[5] == 0 &&
           h->aux[0] == s.npanel && h->aux[1] == s.ng;
}

int64_t nm24_packed_size(const isthmus_sparse_matrix *w, int32_t P) {
    nm24_sizes s;
    return sizes_of(w, P, &s) ? s.total : -1;
}

static inline unsigned nibble(const uint16_t *meta, int64_t g) { return (meta[g >> 2] >> (4 * (g & 3))) & 15u; }

void nm24_pack(const isthmus_sparse_matrix *w, sparse_hdr *h, int32_t P, int32_t isa) {
    nm24_sizes s = {0};
    sizes_of(w, P, &s); /* packed_size succeeded for this w before pack is called */
    memset(h, 0, SPARSE_HEADER);
    h->magic = SPARSE_MAGIC;
    h->version = SPARSE_VERSION;
    h->isa = isa;
    h->format = ISTHMUS_SPARSE_2_4;
    h->dtype = w->dtype;
    h->br = 1;
    h->bc = 1;
    h->layout = P;
    h->n = w->n;
    h->k = w->k;
    h->nnz = w->n * (w->k / 2);
    h->total = s.total;
    h->off[0] = SPARSE_HEADER;
    h->off[1] = h->off[0] + s.vals;
    h->off[2] = h->off[1] + s.idx;
    h->off[3] = h->off[2] + s.comp;
    h->aux[0] = s.npanel;
    h->aux[1] = s.ng;
    char *base = (char *)h;
    memset(base + SPARSE_HEADER, 0, (size_t)(s.total - SPARSE_HEADER)); /* alignment padding included */
    int64_t G = w->k / 4, words = (w->k + 15) / 16, half = w->k / 2;
    uint8_t *idx = (uint8_t *)(base + h->off[1]);
    if (w->dtype == ISTHMUS_DTYPE_F32) {
        float *vals = (float *)(base + h->off[0]);
        const float *src = w->values;
        for (int64_t r = 0; r < s.npanel * P; r++) {
            int64_t pan = r / P, lane = r % P;
            for (int64_t g = 0; g < G; g++) {
                int64_t at = (pan * G + g) * P + lane;
                if (r < w->n) {
                    vals[(pan * G + g) * 2 * P + lane] = src[r * half + 2 * g];
                    vals[(pan * G + g) * 2 * P + P + lane] = src[r * half + 2 * g + 1];
                    idx[at] = (uint8_t)nibble(w->meta + r * words, g);
                } else {
                    idx[at] = NM24_PAD_NIBBLE; /* values stay 0 */
                }
            }
        }
    } else {
        int8_t *vals = (int8_t *)(base + h->off[0]);
        int32_t *comp = (int32_t *)(base + h->off[2]);
        float *scale = (float *)(base + h->off[3]);
        const int8_t *src = w->values;
        int64_t Q = s.ng;
        for (int64_t r = 0; r < s.npanel * P; r++) {
            int64_t pan = r / P, lane = r % P;
            int32_t sum = 0;
            for (int64_t q = 0; q < Q; q++) {
                int64_t at = (pan * Q + q) * P + lane;
                int8_t *v = vals + at * 4;
                unsigned lo = NM24_PAD_NIBBLE, hi = NM24_PAD_NIBBLE;
                if (r < w->n) {
                    const int8_t *sv = src + r * half + 4 * q;
                    const uint16_t *m = w->meta + r * words;
                    lo = nibble(m, 2 * q);
                    v[0] = sv[0];
                    v[1] = sv[1];
                    if (2 * q + 1 < G) {
                        hi = nibble(m, 2 * q + 1);
                        v[2] = sv[2];
                        v[3] = sv[3];
                    }
                    sum += v[0] + v[1] + v[2] + v[3];
                }
                idx[at] = (uint8_t)(lo | hi << 4);
            }
            comp[r] = 128 * sum; /* |sum| <= 127 * K / 2 <= 2^23: no overflow */
            scale[r] = r < w->n ? w->scales[r] : 0.0f;
        }
    }
}
