/* Packing of CSR and BSR matrices into the layout of bsr.h, shared by every ISA variant (the layout is
 * the same; the header records the ISA it was packed under). w has been validated by sparse.c. */
#include "bsr.h"

#include <string.h>

typedef struct bsr_geom {
    int32_t br, bc, csr;
    int64_t R, nblocks, esize, nkb, nseg;
    int64_t off[6], bm, total; /* bm: offset of the bitmap section, or 0 */
} bsr_geom;

/* The sections of a matrix of this shape, without the bitmap (*o: their end). */
static void geom_base(bsr_geom *g, int32_t format, int32_t dtype, int32_t br, int32_t bc, int64_t n, int64_t k,
                      int64_t nblocks, int64_t *end) {
    g->csr = format == ISTHMUS_SPARSE_CSR;
    g->br = g->csr ? 1 : br;
    g->bc = g->csr ? 1 : bc;
    g->R = n / g->br;
    g->nblocks = nblocks;
    g->esize = dtype == ISTHMUS_DTYPE_S8 ? 1 : 4;
    g->nkb = (k + BSR_PANEL - 1) / BSR_PANEL;
    g->nseg = (k + BSR_SEG - 1) / BSR_SEG;
    /* validated: nblocks * br * bc <= n * k < 2^45 and n * k < 2^45, so nothing here overflows */
    int64_t slots = g->nblocks + BSR_PAD;
    int64_t o = SPARSE_HEADER;
    g->off[0] = o;
    o = sparse_align64(o + (g->R + 1) * 8);
    g->off[1] = o;
    o = sparse_align64(o + slots * (g->csr ? 1 : 2));
    g->off[2] = o;
    o = sparse_align64(o + slots * g->br * g->bc * g->esize);
    g->off[3] = o;
    if (dtype == ISTHMUS_DTYPE_S8) o = sparse_align64(o + n * 4);
    g->off[4] = o;
    o = sparse_align64(o + g->R * g->nkb * 2);
    g->off[5] = o;
    if (g->csr) o = sparse_align64(o + g->R * g->nseg);
    g->bm = 0;
    *end = o;
}

/* Total bytes with the bitmap section (CSR F32 only). */
static int64_t geom_bm_total(const bsr_geom *g, int64_t k) {
    return sparse_align64(bsr_bm_off(g->off[5], g->R, k) + g->R * ((k + 63) / 64) * 8);
}

static void geom_of(const isthmus_sparse_matrix *w, bsr_geom *g) {
    int64_t o;
    geom_base(g, w->format, w->dtype, w->block_rows, w->block_cols, w->n, w->k, w->nnz, &o);
    if (g->csr && w->dtype == ISTHMUS_DTYPE_F32)
        for (int64_t r = 0; r < g->R; r++)
            if (bsr_bm_row(w->row_ptr[r + 1] - w->row_ptr[r], w->k)) {
                g->bm = bsr_bm_off(g->off[5], g->R, w->k);
                o = geom_bm_total(g, w->k);
                break;
            }
    g->total = o;
}

int bsr_header_ok(const sparse_hdr *h) {
    if (!sparse_shape_ok(h)) return 0;
    int csr = h->format == ISTHMUS_SPARSE_CSR;
    if (csr ? !(h->br == 1 && h->bc == 1 && h->layout == BSR_SEG8)
            : !(h->format == ISTHMUS_SPARSE_BSR && h->layout == BSR_IDX16 &&
                ((h->br == 1 && (h->bc == 4 || h->bc == 8)) || (h->br == 4 && h->bc == 4))))
        return 0;
    if (h->n % h->br || h->k % h->bc) return 0;
    int64_t R = h->n / h->br, nblocks = h->aux[0];
    if (h->aux[1] != R || nblocks < 0 || nblocks > R * (h->k / h->bc) || h->nnz != nblocks * h->br * h->bc)
        return 0;
    bsr_geom g;
    int64_t end;
    geom_base(&g, h->format, h->dtype, h->br, h->bc, h->n, h->k, nblocks, &end);
    for (int i = 0; i < 6; i++)
        if (h->off[i] != g.off[i]) return 0;
    return h->total == end || (csr && h->dtype == ISTHMUS_DTYPE_F32 && h->total == geom_bm_total(&g, h->k));
}

int64_t bsr_packed_size(const isthmus_sparse_matrix *w) {
    bsr_geom g;
    geom_of(w, &g);
    return g.total;
}

void bsr_pack(const isthmus_sparse_matrix *w, sparse_hdr *h, int32_t isa) {
    bsr_geom g;
    geom_of(w, &g);
    memset(h, 0, SPARSE_HEADER);
    h->magic = SPARSE_MAGIC;
    h->version = SPARSE_VERSION;
    h->isa = isa;
    h->format = w->format;
    h->dtype = w->dtype;
    h->br = g.br;
    h->bc = g.bc;
    h->layout = g.csr ? BSR_SEG8 : BSR_IDX16;
    h->n = w->n;
    h->k = w->k;
    h->nnz = g.nblocks * g.br * g.bc;
    h->total = g.total;
    for (int i = 0; i < 6; i++) h->off[i] = g.off[i];
    h->aux[0] = g.nblocks;
    h->aux[1] = g.R;
    char *base = (char *)h;
    memcpy(base + g.off[0], w->row_ptr, (size_t)(g.R + 1) * 8);
    uint16_t *c256 = (uint16_t *)(base + g.off[4]);
    uint8_t *c32 = (uint8_t *)(base + g.off[5]);
    memset(c256, 0, (size_t)(g.R * g.nkb * 2));
    if (g.csr) memset(c32, 0, (size_t)(g.R * g.nseg));
    for (int64_t r = 0; r < g.R; r++)
        for (int64_t b = w->row_ptr[r]; b < w->row_ptr[r + 1]; b++) {
            int64_t col = (int64_t)w->col_idx[b] * g.bc;
            c256[r * g.nkb + col / BSR_PANEL]++;
            if (g.csr) c32[r * g.nseg + col / BSR_SEG]++;
        }
    if (g.csr) {
        uint8_t *ix = (uint8_t *)(base + g.off[1]);
        for (int64_t b = 0; b < g.nblocks; b++) ix[b] = (uint8_t)(w->col_idx[b] % BSR_PANEL);
        memset(ix + g.nblocks, 0, BSR_PAD);
    } else {
        uint16_t *ix = (uint16_t *)(base + g.off[1]);
        for (int64_t b = 0; b < g.nblocks; b++) ix[b] = (uint16_t)w->col_idx[b];
        memset(ix + g.nblocks, 0, BSR_PAD * 2);
    }
    int64_t vbytes = g.nblocks * g.br * g.bc * g.esize;
    if (vbytes) memcpy(base + g.off[2], w->values, (size_t)vbytes);
    memset(base + g.off[2] + vbytes, 0, (size_t)(BSR_PAD * g.br * g.bc * g.esize));
    if (w->dtype == ISTHMUS_DTYPE_S8) memcpy(base + g.off[3], w->scales, (size_t)w->n * 4);
    if (g.bm) {
        int64_t nw = (w->k + 63) / 64;
        uint64_t *bm = (uint64_t *)(base + g.bm);
        memset(bm, 0, (size_t)(g.R * nw * 8));
        for (int64_t r = 0; r < g.R; r++)
            for (int64_t b = w->row_ptr[r]; b < w->row_ptr[r + 1]; b++)
                bm[r * nw + w->col_idx[b] / 64] |= (uint64_t)1 << (w->col_idx[b] % 64);
    }
}
