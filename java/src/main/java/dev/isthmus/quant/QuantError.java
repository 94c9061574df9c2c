package dev.isthmus.quant;

/**
 * How far a dequantized tensor is from the original.
 *
 * <pre>{@code
 * QuantError e = Quant.error(x, Quant.quantize(x, QuantScheme.int8PerGroup(32)));
 * System.out.printf("SQNR %.1f dB, max error %.3g%n", e.sqnrDb(), e.maxAbsError());
 * }</pre>
 *
 * @param sqnrDb      signal-to-quantization-noise ratio, 10 log10(sum x^2 / sum (x - x')^2), in dB
 *                    (infinite when exact)
 * @param maxAbsError max |x - x'|
 * @param rmse        root mean square error
 */
public record QuantError(double sqnrDb, double maxAbsError, double rmse) {}
