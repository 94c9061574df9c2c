/* STUB: spmm_24__ref, to be written (packed_size -1 makes every call fail cleanly). */
#include "sparse.h"

static int64_t stub_size(const isthmus_sparse_matrix *w) { (void)w; return -1; }
static void stub_pack(const isthmus_sparse_matrix *w, sparse_hdr *h) { (void)w; (void)h; }
static isthmus_status stub_run(const spmm_problem *p) {
    (void)p;
    return isthmus__fail(ISTHMUS_ERR_UNSUPPORTED, "spmm_24__ref: not implemented yet");
}
const SPMM_kernel spmm_24__ref = {ISTHMUS_ISA_REF, stub_size, stub_pack, stub_run};
