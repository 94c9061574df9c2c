/**
 * Pruning and sparse matmul: {@link dev.isthmus.sparse.Pruning} makes a pruning mask (magnitude or Wanda
 * scores; per row, global, N:M, or blocks), {@link dev.isthmus.sparse.SparseMatrix} holds a pruned weight
 * matrix in an exchange format (CSR, BSR 1x4 / 1x8 / 4x4, or 2:4 with NVIDIA-order metadata; F32 values,
 * or int8 values with per-row scales) packed for the CPU kernels, and {@link dev.isthmus.sparse.Sparse}
 * multiplies activations by it.
 *
 * <pre>{@code
 * try (Tensor w = Tensor.of(weights, n, k);                        // F32 [N, K]
 *      Tensor x = Tensor.of(activations, m, k);                    // F32 [M, K]
 *      PruneResult r = Pruning.nm(2, 4).wanda(x).prune(w, x);      // 2:4, Wanda scores, report on x
 *      SparseMatrix ws = r.toSparse();                             // SparseFormat.TWO_FOUR
 *      Tensor y = Sparse.matmul(x, ws, null)) {                    // F32 [M, N]
 *     System.out.println(r.report());   // achieved sparsity 0.5, weight and output errors
 * }
 * }</pre>
 *
 * <p>Every entry checks its arguments in Java before native code runs: a wrong shape, dtype or closed
 * tensor, or a malformed exchange array (an index out of range or out of order, inconsistent row
 * pointers, bad 2:4 metadata, an int8 -128, a bad scale) is an {@link java.lang.IllegalArgumentException}
 * or {@link java.lang.IllegalStateException} naming the argument, the row and index, and the shapes. A
 * native failure that passes these checks is an {@link dev.isthmus.IsthmusException}.
 */
package dev.isthmus.sparse;
