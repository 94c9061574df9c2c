package dev.isthmus.bench.kernels;

import dev.isthmus.DType;
import dev.isthmus.Isa;
import dev.isthmus.Isthmus;
import dev.isthmus.Ops;
import dev.isthmus.Tensor;
import dev.isthmus.bench.Shape;
import dev.isthmus.quant.PackedWeights;
import dev.isthmus.quant.Quant;
import dev.isthmus.quant.QuantScheme;
import dev.isthmus.quant.QuantizedTensor;

/**
 * isthmus int8 GEMM on one forced ISA variant: {@code Ops.matmul(QuantizedTensor, PackedWeights, null, out)}
 * with activations quantized beforehand, or (fused) {@code Ops.matmul(Tensor, PackedWeights, null, out)}
 * quantizing f32 activations inside the call.
 */
public final class IsthmusGemm implements GemmKernel {
    private final Shape shape;
    private final PackedWeights w;
    private final QuantizedTensor aq;
    private final Tensor x;
    private final Tensor out;
    private final String describe;

    /**
     * @param isa    the variant to force (the process-wide cap is set before packing)
     * @param group  0 for per-row activations and per-channel weights, else the group of both
     * @param fused  f32 activations quantized per row inside each call
     */
    public IsthmusGemm(Shape s, float[] xf, float[] wf, Isa isa, int group, boolean fused, int threads) {
        this.shape = s;
        Isthmus.setThreads(threads);
        Isthmus.setIsaCap(isa);
        if (Isthmus.isa() != isa)
            throw new IllegalStateException("asked for " + isa + " but isthmus runs " + Isthmus.isa() + " (" + Isthmus.describe() + ")");
        QuantScheme ws = group == 0 ? QuantScheme.int8PerRow() : QuantScheme.int8PerGroup(group);
        try (Tensor wt = Tensor.of(wf, s.n(), s.k())) {
            w = PackedWeights.quantize(wt, ws);
        }
        if (w.isa() != isa) throw new IllegalStateException("weights packed for " + w.isa() + ", not " + isa);
        if (fused) {
            x = Tensor.of(xf, s.m(), s.k());
            aq = null;
        } else {
            x = null;
            try (Tensor xt = Tensor.of(xf, s.m(), s.k())) {
                aq = Quant.quantize(xt, ws);
            }
        }
        out = Tensor.allocate(DType.F32, s.m(), s.n());
        describe = "isthmus " + Isthmus.version() + " " + isa + (fused ? " fused f32->int8" : "") + ", " + ws
                + ", packed " + w.byteSize() + " B, " + Isthmus.threads() + " threads";
    }

    @Override
    public void run() {
        if (aq != null) Ops.matmul(aq, w, null, out);
        else Ops.matmul(x, w, null, out);
    }

    @Override
    public float output(int i, int j) {
        return out.getFloat(i, j);
    }

    @Override
    public double tolerance() {
        return 0.03;
    }

    @Override
    public String describe() {
        return describe;
    }

    @Override
    public void close() {
        w.close();
        if (aq != null) aq.close();
        if (x != null) x.close();
        out.close();
    }

    @Override
    public String toString() {
        return describe + " " + shape;
    }
}
