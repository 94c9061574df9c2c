/* Packing of CSR and BSR matrices into the layout of bsr.h, shared by every ISA variant (the layout is
 * the same; the header records the ISA it was packed under). w has been validated by sparse.c. */
#include "bsr.h"

#include <string.h>

typedef struct bsr_geom {
    int32_t br, bc, idx16;
    int64_t R, nblocks, esize;
    int64_t off[4], total;
} bsr_geom;

/* Returns 0 on overflow. */
static int geom_of(const isthmus_sparse_matrix *w, bsr_geom *g) {
    int csr = w->format == ISTHMUS_SPARSE_CSR;
    g->br = csr ? 1 : w->block_rows;
    g->bc = csr ? 1 : w->block_cols;
    g->R = w->n / g->br;
    g->nblocks = w->nnz;
    g->idx16 = w->k / g->bc <= 65536;
    g->esize = w->dtype == ISTHMUS_DTYPE_S8 ? 1 : 4;
    /* validated: nblocks * br * bc <= n * k < 2^45, so none of these products overflow */
    int64_t slots = g->nblocks + BSR_PAD;
    int64_t o = SPARSE_HEADER;
    g->off[0] = o;
    o = sparse_align64(o + (g->R + 1) * 8);
    g->off[1] = o;
    o = sparse_align64(o + slots * (g->idx16 ? 2 : 4));
    g->off[2] = o;
    o = sparse_align64(o + slots * g->br * g->bc * g->esize);
    g->off[3] = o;
    if (w->dtype == ISTHMUS_DTYPE_S8) o = sparse_align64(o + w->n * 4);
    g->total = o;
    return o > 0;
}

int64_t bsr_packed_size(const isthmus_sparse_matrix *w) {
    bsr_geom g;
    return geom_of(w, &g) ? g.total : -1;
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
    h->layout = g.idx16 ? BSR_IDX16 : BSR_IDX32;
    h->n = w->n;
    h->k = w->k;
    h->nnz = g.nblocks * g.br * g.bc;
    h->total = g.total;
    for (int i = 0; i < 4; i++) h->off[i] = g.off[i];
    h->aux[0] = g.nblocks;
    h->aux[1] = g.R;
    char *base = (char *)h;
    memcpy(base + g.off[0], w->row_ptr, (size_t)(g.R + 1) * 8);
    if (g.idx16) {
        uint16_t *ix = (uint16_t *)(base + g.off[1]);
        for (int64_t b = 0; b < g.nblocks; b++) ix[b] = (uint16_t)w->col_idx[b];
        memset(ix + g.nblocks, 0, BSR_PAD * 2);
    } else {
        uint32_t *ix = (uint32_t *)(base + g.off[1]);
        for (int64_t b = 0; b < g.nblocks; b++) ix[b] = (uint32_t)w->col_idx[b];
        memset(ix + g.nblocks, 0, BSR_PAD * 4);
    }
    int64_t vbytes = g.nblocks * g.br * g.bc * g.esize;
    if (vbytes) memcpy(base + g.off[2], w->values, (size_t)vbytes);
    memset(base + g.off[2] + vbytes, 0, (size_t)(BSR_PAD * g.br * g.bc * g.esize));
    if (w->dtype == ISTHMUS_DTYPE_S8) memcpy(base + g.off[3], w->scales, (size_t)w->n * 4);
}
