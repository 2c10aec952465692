"""GGUF loading speed on the real Qwen2.5-Coder-0.5B Q4_K_M file, against the gguf package measured in the same run.

    python benchmarks/bench_gguf.py [--threads 2] [--skip-assembly] [--skip-numpy]

Prints: assembling the file from its packages (into a temporary cache), header parsing (ours vs gguf.GGUFReader),
dequantization per ggml type (our torch decoders vs gguf.quants in numpy; results are bit-identical, checked here),
and `load_gguf_model` end to end at fp32 and bf16. Wall time and process CPU time are both shown: on a shared
machine the CPU time is the steadier number.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path


def timed(fn, repeat: int = 1):
    best_wall, best_cpu, result = float("inf"), float("inf"), None
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return best_wall, best_cpu, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-assembly", action="store_true")
    parser.add_argument("--skip-numpy", action="store_true", help="skip the (slow) gguf-py reference timings")
    args = parser.parse_args()

    import numpy as np
    import torch

    from qwq.model import hub
    from qwq.model.gguf import GGUFCheckpoint, load_gguf_model
    from qwq.model.gguf_file import read_header

    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, load average {os.getloadavg()[0]:.1f}")
    path = hub.ensure_real_model(progress=False)

    if not args.skip_assembly:
        with tempfile.TemporaryDirectory() as tmp:
            old = os.environ.get("QWQ_CACHE")
            os.environ["QWQ_CACHE"] = tmp
            try:
                wall, cpu, _ = timed(lambda: hub.ensure_real_model(progress=False))
                print(f"assemble 6 parts + SHA-256 (491 MB): {wall:.2f} s wall, {cpu:.2f} s cpu")
                wall, _, _ = timed(lambda: hub.ensure_real_model(progress=False), repeat=3)
                print(f"cached call (stat + stamp): {wall * 1e3:.2f} ms")
            finally:
                if old is None:
                    os.environ.pop("QWQ_CACHE", None)
                else:
                    os.environ["QWQ_CACHE"] = old

    wall, cpu, _ = timed(lambda: read_header(path), repeat=3)
    line = f"header + metadata: ours {wall:.3f} s"
    if not args.skip_numpy:
        import gguf

        ref_wall, _, _ = timed(lambda: gguf.GGUFReader(path))
        line += f", gguf.GGUFReader {ref_wall:.2f} s ({ref_wall / wall:.0f}x)"
    print(line)

    checkpoint = GGUFCheckpoint.open(path)
    by_type: dict[str, list] = {}
    for tensor in checkpoint.tensors.values():
        by_type.setdefault(tensor.type_name, []).append(tensor)
    for type_name, tensors in sorted(by_type.items()):
        for t in tensors:
            np.asarray(t.raw).sum()  # page the bytes in, so both sides start warm
        values = sum(t.numel for t in tensors)
        wall, cpu, _ = timed(lambda: [t.dequantize() for t in tensors], repeat=2)
        line = (f"dequantize {type_name:5s} {len(tensors):3d} tensors {values / 1e6:6.1f}M values: torch {wall:.2f} s "
                f"wall / {cpu:.2f} s cpu ({values / wall / 1e6:.0f} M values/s)")
        if not args.skip_numpy and type_name != "F32":
            import gguf.quants

            ref_wall, _, _ = timed(lambda: [gguf.quants.dequantize(t.raw, t.ggml_type) for t in tensors])
            sample = min(tensors, key=lambda t: t.numel)
            reference = gguf.quants.dequantize(sample.raw, sample.ggml_type).astype(np.float32).reshape(sample.shape)
            same = np.array_equal(sample.dequantize().numpy().view(np.uint32), reference.view(np.uint32))
            line += f"; gguf.quants {ref_wall:.2f} s ({ref_wall / wall:.1f}x), bit-identical: {same}"
        print(line)

    for dtype in (torch.float32, torch.bfloat16):
        wall, cpu, _ = timed(lambda: load_gguf_model(path, dtype=dtype))
        print(f"load_gguf_model({str(dtype).removeprefix('torch.')}): {wall:.2f} s wall, {cpu:.2f} s cpu")


if __name__ == "__main__":
    main()
