package dev.isthmus.bench.kernels;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Tensor;
import dev.isthmus.bench.SparseCase;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;
import dev.isthmus.sparse.BlockShape;
import dev.isthmus.sparse.Sparse;
import dev.isthmus.sparse.SparseFormat;
import dev.isthmus.sparse.SparseMatrix;

/**
 * isthmus sparse matmul on one forced ISA variant: {@code Sparse.matmul(x, w, null, y)} with W a {@link SparseMatrix}
 * built from the pruned weights (f32, or int8 with per-row scales; int8 activations quantized per row beforehand, as the
 * dense INT8 baseline gets them).
 */
public final class IsthmusSparse implements SparseKernels.Sized {
    private final SparseMatrix w;
    private final Tensor x;
    private final QuantizedTensor xq;
    private final Tensor y;
    private final boolean int8;
    private final String describe;

    public IsthmusSparse(SparseCase c, float[] xf, float[] pruned, Isa isa, int threads) {
        Isthmus.setThreads(threads);
        Isthmus.setIsaCap(isa);
        if (Isthmus.isa() != isa)
            throw new IllegalStateException("asked for " + isa + " but isthmus runs " + Isthmus.isa() + " (" + Isthmus.describe() + ")");
        int8 = c.dtype().equals("s8");
        SparseFormat f = c.format().equals("csr") ? SparseFormat.CSR : c.format().equals("24") ? SparseFormat.TWO_FOUR : SparseFormat.BSR;
        BlockShape b = switch (c.format()) {
            case "bsr1x4" -> BlockShape.B1x4;
            case "bsr1x8" -> BlockShape.B1x8;
            case "bsr4x4" -> BlockShape.B4x4;
            default -> null;
        };
        try (Tensor wt = Tensor.of(pruned, c.n(), c.k())) {
            SparseMatrix m = b == null ? SparseMatrix.fromDense(wt, f) : SparseMatrix.fromDense(wt, f, b);
            if (int8) {
                w = m.quantizeInt8();
                m.close();
            } else {
                w = m;
            }
        }
        if (int8) {
            try (Tensor xt = Tensor.of(xf, c.m(), c.k())) {
                xq = Quant.quantize(xt, QuantScheme.int8PerRow());
            }
            x = null;
        } else {
            x = Tensor.of(xf, c.m(), c.k());
            xq = null;
        }
        y = Tensor.allocate(DType.F32, c.m(), c.n());
        describe = weightBytes() + " B of weights per call; isthmus " + Isthmus.version() + " " + isa + " " + w + ", "
                + Isthmus.threads() + " threads";
    }

    @Override
    public long weightBytes() {
        return w.packedBytes();
    }

    @Override
    public void run() {
        if (int8) Sparse.matmul(xq, w, null, y);
        else Sparse.matmul(x, w, null, y);
    }

    @Override
    public float output(int i, int j) {
        return y.getFloat(i, j);
    }

    @Override
    public double tolerance() {
        return int8 ? 0.03 : 1e-4;
    }

    @Override
    public String describe() {
        return describe;
    }

    @Override
    public void close() {
        w.close();
        if (x != null) x.close();
        if (xq != null) xq.close();
        y.close();
    }
}
