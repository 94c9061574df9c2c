#!/usr/bin/env python3
"""torch_baseline.py: the PyTorch baselines for bench_cuda's shapes, timed the same way (CUDA events around every
call, median / min / max over --iters calls after 5 warm-up calls, rotating buffer sets larger than 2x the L2).

  torch._int_mm(a int8 [M, K], w int8 [N, K].t())  = cuBLASLt INT8 -> int32. It refuses M <= 16, so the decode
                                                      rows are timed at M = 17 and 32 instead;
  torch.matmul(a bf16 [M, K], w bf16 [N, K].t())    = cuBLAS BF16, at the decode M = 1, 8, 16 (it reads twice the
                                                      weight bytes of INT8).

  python3 torch_baseline.py [--json FILE] [--iters N] [--quick]
"""
import argparse
import json
import sys


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json")
    ap.add_argument("--iters", type=int, default=50)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    try:
        import torch
    except ImportError as e:
        print(f"torch_baseline: SKIPPED: PyTorch is not installed ({e})")
        return 77
    if not torch.cuda.is_available():
        print("torch_baseline: SKIPPED: torch.cuda.is_available() is False")
        return 77
    dev = torch.device("cuda:0")
    props = torch.cuda.get_device_properties(dev)
    l2 = getattr(props, "L2_cache_size", 60 << 20) or (60 << 20)
    print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {props.name}, L2 {l2 >> 20} MiB")

    def time_calls(fn, nsets, iters):
        for i in range(5):
            fn(i % nsets)
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        for i in range(iters):
            ev[i][0].record()
            fn(i % nsets)
            ev[i][1].record()
        torch.cuda.synchronize()
        ms = sorted(s.elapsed_time(e) for s, e in ev)
        return ms[len(ms) // 2], ms[0], ms[-1]

    rows = []
    # (label, M, N, K, op): the shapes, decode ones in the forms torch accepts
    cases = [
        ("8192x8192x8192", 8192, 8192, 8192, "int_mm"),
        ("512x14336x4096", 512, 14336, 4096, "int_mm"),
        ("1x14336x4096", 17, 14336, 4096, "int_mm"),
        ("1x14336x4096", 32, 14336, 4096, "int_mm"),
        ("1x14336x4096", 1, 14336, 4096, "bf16_matmul"),
        ("8x14336x4096", 8, 14336, 4096, "bf16_matmul"),
        ("16x14336x4096", 16, 14336, 4096, "bf16_matmul"),
    ]
    for label, m, n, k, op in cases:
        if args.quick and m == 8192:
            continue
        esz = 1 if op == "int_mm" else 2
        set_bytes = (m * k + n * k) * esz + m * n * 4
        nsets = max(2, min(64, (2 * l2 + set_bytes - 1) // set_bytes + 1))
        g = torch.Generator(device=dev)
        g.manual_seed(1234)
        if op == "int_mm":
            A = [torch.randint(-127, 128, (m, k), dtype=torch.int8, device=dev, generator=g) for _ in range(nsets)]
            W = [torch.randint(-127, 128, (n, k), dtype=torch.int8, device=dev, generator=g) for _ in range(nsets)]
            try:
                torch._int_mm(A[0], W[0].t())
            except RuntimeError as e:
                print(f"{label:16s} M={m:<5d} {op:12s} refused: {e}")
                continue
            fn = lambda i: torch._int_mm(A[i], W[i].t())
        else:
            A = [torch.randn((m, k), dtype=torch.bfloat16, device=dev, generator=g) for _ in range(nsets)]
            W = [torch.randn((n, k), dtype=torch.bfloat16, device=dev, generator=g) for _ in range(nsets)]
            fn = lambda i: torch.matmul(A[i], W[i].t())
        med, mn, mx = time_calls(fn, nsets, args.iters)
        tops = 2.0 * m * n * k / (med * 1e-3) / 1e12
        wgbs = n * k * esz / (med * 1e-3) / 1e9
        print(f"{label:16s} M={m:<5d} {op:12s} median {med:9.4f} ms (min {mn:9.4f}, max {mx:9.4f})  "
              f"{tops:8.1f} TOPS  {wgbs:7.1f} GB/s W")
        rows.append(dict(shape=label, m=m, n=n, k=k, op=op, median_ms=med, min_ms=mn, max_ms=mx, tops=tops,
                         weight_gbs=wgbs))
        del A, W
        torch.cuda.empty_cache()
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(torch=torch.__version__, cuda=torch.version.cuda, device=props.name, iters=args.iters,
                           results=rows), f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
