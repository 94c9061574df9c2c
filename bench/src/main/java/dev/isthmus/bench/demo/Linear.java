package dev.isthmus.bench.demo;

import dev.isthmus.Ops;
import dev.isthmus.Tensor;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.sparse.Sparse;
import dev.isthmus.sparse.SparseMatrix;

/** {@code out[M, N] = x[M, K] . W^T}: a dense int8 GEMM or a sparse one, as a model layer sees it. */
public interface Linear {
    long n();

    long k();

    /** Bytes of weights one call reads. */
    long bytes();

    void apply(Tensor x, Tensor out);

    /** Int8 per-channel packed weights, {@link Ops#matmul(Tensor, PackedWeights, Tensor, Tensor)}. */
    static Linear dense(PackedWeights w) {
        return new Linear() {
            public long n() { return w.n(); }
            public long k() { return w.k(); }
            public long bytes() { return w.byteSize(); }
            public void apply(Tensor x, Tensor out) { Ops.matmul(x, w, null, out); }
            public String toString() { return "dense " + w; }
        };
    }

    /** A pruned matrix, {@link Sparse#matmul(Tensor, SparseMatrix, Tensor, Tensor)}. */
    static Linear sparse(SparseMatrix w) {
        return new Linear() {
            public long n() { return w.n(); }
            public long k() { return w.k(); }
            public long bytes() { return w.packedBytes(); }
            public void apply(Tensor x, Tensor out) { Sparse.matmul(x, w, null, out); }
            public String toString() { return "sparse " + w; }
        };
    }
}
