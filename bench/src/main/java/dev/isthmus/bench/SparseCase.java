package dev.isthmus.bench;

import java.util.Locale;

/**
 * One sparse-matmul workload, written {@code DTYPE-FORMAT-SPARSITY-mM} with an optional {@code -nN-kK}
 * (default N = K = 4096): e.g. {@code f32-csr-90-m1}, {@code s8-bsr4x4-90-m128}, {@code f32-24-50-m8}, and
 * the dense baselines' workloads {@code f32-dense-0-m1} / {@code s8-dense-0-m128}.
 *
 * @param dtype    "f32" or "s8" (int8 weights with per-row scales, activations quantized per row)
 * @param format   "dense", "csr", "bsr1x4", "bsr1x8", "bsr4x4" or "24" (2:4)
 * @param sparsity percent of weights removed (0 for dense, 50 for 2:4)
 */
public record SparseCase(String dtype, String format, int sparsity, int m, int n, int k) {
    public SparseCase {
        if (!dtype.equals("f32") && !dtype.equals("s8")) throw new IllegalArgumentException("dtype '" + dtype + "': f32 or s8");
        switch (format) {
            case "dense" -> {
                if (sparsity != 0) throw new IllegalArgumentException("dense workloads have sparsity 0");
            }
            case "24" -> {
                if (sparsity != 50) throw new IllegalArgumentException("2:4 workloads have sparsity 50");
                if (k % 4 != 0) throw new IllegalArgumentException("2:4 needs K % 4 == 0");
            }
            case "csr", "bsr1x4", "bsr1x8", "bsr4x4" -> {
                if (sparsity < 0 || sparsity > 100) throw new IllegalArgumentException("sparsity " + sparsity + "% outside 0..100");
            }
            default -> throw new IllegalArgumentException("format '" + format + "': dense, csr, bsr1x4, bsr1x8, bsr4x4 or 24");
        }
        new Shape(m, n, k); // validates the dimensions
    }

    public static SparseCase parse(String s) {
        String[] p = s.trim().toLowerCase(Locale.ROOT).split("-");
        try {
            if (p.length != 4 && p.length != 6) throw new IllegalArgumentException();
            if (!p[3].startsWith("m")) throw new IllegalArgumentException();
            int n = 4096, k = 4096;
            if (p.length == 6) {
                if (!p[4].startsWith("n") || !p[5].startsWith("k")) throw new IllegalArgumentException();
                n = Integer.parseInt(p[4].substring(1));
                k = Integer.parseInt(p[5].substring(1));
            }
            return new SparseCase(p[0], p[1], Integer.parseInt(p[2]), Integer.parseInt(p[3].substring(1)), n, k);
        } catch (NumberFormatException | IndexOutOfBoundsException e) {
            throw new IllegalArgumentException("workload '" + s + "' is not DTYPE-FORMAT-SPARSITY-mM[-nN-kK]", e);
        } catch (IllegalArgumentException e) {
            if (e.getMessage() != null) throw new IllegalArgumentException("workload '" + s + "': " + e.getMessage(), e);
            throw new IllegalArgumentException("workload '" + s + "' is not DTYPE-FORMAT-SPARSITY-mM[-nN-kK], e.g. f32-csr-90-m1");
        }
    }

    public boolean dense() {
        return format.equals("dense");
    }

    public Shape shape() {
        return new Shape(m, n, k);
    }

    /** The dense workload of the same dtype and shape: the baseline this case is compared with. */
    public SparseCase baseline() {
        return new SparseCase(dtype, "dense", 0, m, n, k);
    }

    @Override
    public String toString() {
        return dtype + "-" + format + "-" + sparsity + "-m" + m + (n == 4096 && k == 4096 ? "" : "-n" + n + "-k" + k);
    }
}
