/* STUB: spmm_bsr__avx512, to be written (packed_size -1 makes every call fail cleanly). */
#include "sparse.h"

static int64_t stub_size(const isthmus_sparse_matrix *w) { (void)w; return -1; }
static void stub_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { (void)w; (void)h; }
static isthmus_status stub_run(const spmm_problem *p) {
    (void)p;
    return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED, "spmm_bsr__avx512: not implemented yet");
}
const SPMM_kernel spmm_bsr__avx512 = {ISTHMUS_ISA_AVX512, stub_size, stub_pack, stub_run};
