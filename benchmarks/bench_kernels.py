"""Where the decode ceilings come from: the CPU matmul kernels on Qwen2.5-Coder-0.5B's shapes, 1 row vs 16 rows.

    python benchmarks/bench_kernels.py [--threads 1] [--rows 1,16]
    python benchmarks/bench_kernels.py --model tiny --rows 1,64     # the tiny preset's GRPO rollouts (weights hot)

For each projection shape (q/k/v and gate/up fused as the engine runs them) it times, from DRAM (enough copies of
the weight are cycled through to defeat the caches, as a real decode step does with 400 MB of weights):
  int4 g32   aten._weight_int4pack_mm_for_cpu (weight-only, bf16 activations)
  int8       aten._weight_int8pack_mm (weight-only, bf16 activations)
  int8x2     qwq's int8_two_term_mm (int8 x int8 torch._int_mm, two activation terms; the LM head uses it)
  w8a8       torch._int_mm with one int8 term per row (the `--quant w8a8` product)
  bf16       dense F.linear on a bf16 weight (oneDNN; twice the bytes of int8)
  qwq bf16   qwq's bf16 GEMM on the same weight (AVX512-BF16, fp32 output; what the fused decode step of a dense bf16
             model runs, e.g. GRPO's rollout copy)
  qwq int4 / qwq int8   qwq's own kernels (qwq.engine.kernels, what the engine runs when they build): int4 g32 /
             int8 weights x two-term int8 activations, VNNI, each weight byte read once per call
Each cell is ms per call; the last block gives per-format totals for one decode step (24 layers + LM head with the
int4 mix's module choice), GB/s of weight bytes for 1 row and GFLOP/s for 16 rows. Weight-only kernels decode the
weight again for every row, so their 16-row cost is a multiple of the 1-row cost; that multiple bounds what batching
can give (aggregate speedup <= 16 x t(1 row) / t(16 rows)).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F



def model_shapes(hidden: int, intermediate: int, vocab: int, kv: int) -> dict:
    return {"qkv": (hidden + 2 * kv, hidden), "o": (hidden, hidden), "gate_up": (2 * intermediate, hidden),
            "down": (hidden, intermediate), "lm_head": (vocab, hidden)}


SHAPES = model_shapes(896, 4864, 151936, 128)
# calls per decode step with gguf_int4_spec on the 0.5B model: (int8 calls, int4 calls)
CALLS = {"qkv": (24, 0), "o": (24, 0), "gate_up": (4, 20), "down": (4, 20), "lm_head": (1, 0)}
TINY_SHAPES = model_shapes(256, 704, 1152, 128)  # qwq/assets/tiny: 4 layers; a 6 MB bf16 model stays in cache
TINY_CALLS = {"qkv": (4, 0), "o": (4, 0), "gate_up": (4, 0), "down": (4, 0), "lm_head": (1, 0)}
COLD_BYTES = 320 * 2**20  # cycle through at least this much weight memory per format


def best_ms(fn, copies: int, seconds: float = 1.0) -> float:
    fn(0)
    best, start, calls = float("inf"), time.perf_counter(), 0
    while calls < 3 * copies or time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        fn(calls % copies)
        best = min(best, time.perf_counter() - t0)
        calls += 1
    return best * 1e3


def formats(n: int, k: int, copies: int) -> dict:
    from qwq.engine.kernels import kernel_ops, layout
    from qwq.engine.quant import (INT4_ACTIVATION_TERMS, INT8_ACTIVATION_TERMS, Int4Linear, Int8Linear,
                                  int8_two_term_mm, unpack_int4)

    weight = torch.randn(n, k) * 0.02
    lin = torch.nn.Linear(k, n, bias=False)
    lin.weight.data = weight
    q4, q8 = Int4Linear.from_linear(lin, 32), Int8Linear.from_linear(lin)
    del lin
    # clones are 64-byte aligned (fresh allocations), as the kernels want
    int4 = [(q4.qweight.clone(), q4.scale_zeros.clone()) for _ in range(copies)]
    int8 = [(q8.qweight.clone(), q8.scales.clone()) for _ in range(copies)]
    bf16 = [weight.bfloat16() for _ in range(copies)]
    ops = kernel_ops()
    fns = {}
    if ops is not None:
        codes = unpack_int4(q4.qweight)
        own4 = [layout.pack_int4(codes, q4.scale_zeros) for _ in range(copies)]
        own8 = [layout.pack_int8(q8.qweight, q8.scales) for _ in range(copies)]
        fns = {"qwq int4": lambda x, i: ops.int4_gemm(x, *own4[i], n, 32, INT4_ACTIVATION_TERMS),
               "qwq int8": lambda x, i: ops.int8_gemm(x, *own8[i], n, INT8_ACTIVATION_TERMS)}
        if ops.bf16_gemm_supported():
            own_bf16 = [layout.pack_bf16(w) for w in bf16]
            fns["qwq bf16"] = lambda x, i: ops.bf16_gemm(x, own_bf16[i], n)

    def one_term(x, q, scales):
        s = x.abs().amax(1, keepdim=True).clamp_(min=1e-20) / 127.0
        return torch._int_mm(torch.round(x / s).to(torch.int8), q.t()) * s * scales

    return {
        **fns,
        "int4 g32": lambda x, i: torch.ops.aten._weight_int4pack_mm_for_cpu(x.bfloat16(), int4[i][0], 32, int4[i][1]),
        "int8": lambda x, i: torch.ops.aten._weight_int8pack_mm(x.bfloat16(), *int8[i]),
        "int8x2": lambda x, i: int8_two_term_mm(x, *int8[i]),
        "w8a8": lambda x, i: one_term(x, int8[i][0], int8[i][1].float()),
        "bf16": lambda x, i: F.linear(x.bfloat16(), bf16[i]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rows", default="1,16")
    parser.add_argument("--model", choices=("0.5b", "tiny"), default="0.5b",
                        help="whose projection shapes (tiny: weights stay in cache, as in its rollouts)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    global SHAPES, CALLS
    if args.model == "tiny":
        SHAPES, CALLS = TINY_SHAPES, TINY_CALLS
    rows = [int(r) for r in args.rows.split(",")]
    table: dict = {}
    cold = args.model == "0.5b"
    print(f"threads={args.threads}; ms per call, " + ("weights cycled from DRAM" if cold else "weights in cache"))
    header = False
    for name, (n, k) in SHAPES.items():
        copies = max(1, -(-COLD_BYTES // (n * k))) if cold else 1
        fns = formats(n, k, copies)
        for m in rows:
            x = torch.randn(m, k)
            table[name, m] = {f: best_ms(lambda i: fn(x, i), copies) for f, fn in fns.items()}
            if not header:
                print(f"{'shape':8s} {'rows':>4s} " + " ".join(f"{f:>9s}" for f in table[name, m]))
                header = True
            print(f"{name:8s} {m:4d} " + " ".join(f"{v:9.3f}" for v in table[name, m].values()), flush=True)
        del fns
    print("\nper decode step of the int4 mix (PyTorch: int8 calls with int8 / int8x2 for the LM head, int4 calls with "
          "int4; qwq: its own int8 and int4):")
    kinds = [("PyTorch", "int8", "int8x2", "int4 g32")]
    if "qwq int8" in table[next(iter(SHAPES)), rows[0]]:
        kinds.append(("qwq", "qwq int8", "qwq int8", "qwq int4"))
    for label, int8_fmt, head_fmt, int4_fmt in kinds:
        for m in rows:
            step = sum(CALLS[s][0] * table[s, m][head_fmt if s == "lm_head" else int8_fmt]
                       + CALLS[s][1] * table[s, m][int4_fmt] for s in SHAPES)
            flops = 2 * m * sum((CALLS[s][0] + CALLS[s][1]) * SHAPES[s][0] * SHAPES[s][1] for s in SHAPES)
            print(f"  {label:7s} {m:2d} rows: {step:7.1f} ms of matmuls -> at most {1e3 * m / step:6.1f} tok/s;"
                  f" {flops / step / 1e6:6.1f} GFLOP/s")
    for fmt, bytes_per_weight in (("w8a8", 1.0), ("bf16", 2.0), ("qwq bf16", 2.0)):
        if fmt not in table[next(iter(SHAPES)), rows[0]]:
            continue
        for m in rows:
            step = sum((CALLS[s][0] + CALLS[s][1]) * table[s, m][fmt] for s in SHAPES)
            flops = 2 * m * sum((CALLS[s][0] + CALLS[s][1]) * SHAPES[s][0] * SHAPES[s][1] for s in SHAPES)
            weights = sum((CALLS[s][0] + CALLS[s][1]) * SHAPES[s][0] * SHAPES[s][1] for s in SHAPES) * bytes_per_weight
            print(f"  all {fmt:8s} {m:2d} rows: {step:7.1f} ms -> {1e3 * m / step:6.1f} tok/s; "
                  f"{weights / step / 1e6:5.1f} GB/s of weights, {flops / step / 1e6:6.1f} GFLOP/s")


if __name__ == "__main__":
    main()
