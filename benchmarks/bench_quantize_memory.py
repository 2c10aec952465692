"""Peak memory of `qwq quantize` on a synthetic multi-GB sharded checkpoint (streaming, shard by shard), and the
resident weight bytes of QwQ-32B quantized, counted on the meta device.

    python benchmarks/bench_quantize_memory.py [--gb 3] [--workdir DIR] [--keep]

The synthetic checkpoint has Qwen2 shapes (hidden 2048, intermediate 8192, vocab 32000, enough layers for --gb of
bf16) in 1 GB shards of random weights. `qwq quantize` runs in a child process; its peak RSS is read from
getrusage. Streaming means the peak stays near one tensor plus one output shard, far below the checkpoint size.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def synthetic_checkpoint(directory: Path, target_gb: float) -> tuple[Path, int]:
    from safetensors.torch import save_file

    from qwq.config import ModelConfig

    hidden, inter, vocab = 2048, 8192, 32000
    per_layer = 4 * hidden * hidden + 3 * hidden * inter
    layers = max(1, int((target_gb * 1e9 / 2 - 2 * vocab * hidden) / per_layer))
    config = ModelConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=inter, num_hidden_layers=layers,
                         num_attention_heads=16, num_key_value_heads=16, torch_dtype="bfloat16")
    directory.mkdir(parents=True, exist_ok=True)
    config.save_hf(directory)
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (vocab, hidden))]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + "input_layernorm.weight", (hidden,)), (p + "post_attention_layernorm.weight", (hidden,))]
        for name in ("q_proj", "k_proj", "v_proj"):
            shapes += [(p + f"self_attn.{name}.weight", (hidden, hidden)), (p + f"self_attn.{name}.bias", (hidden,))]
        shapes += [(p + "self_attn.o_proj.weight", (hidden, hidden)), (p + "mlp.gate_proj.weight", (inter, hidden)),
                   (p + "mlp.up_proj.weight", (inter, hidden)), (p + "mlp.down_proj.weight", (hidden, inter))]
    shapes += [("model.norm.weight", (hidden,)), ("lm_head.weight", (vocab, hidden))]
    shards, current, size, weight_map = [], {}, 0, {}
    generator = torch.Generator().manual_seed(0)

    def flush():
        nonlocal current, size
        if current:
            name = f"model-{len(shards) + 1:05d}.safetensors"
            save_file(current, str(directory / name))
            for tensor_name in current:
                weight_map[tensor_name] = name
            shards.append(name)
            current, size = {}, 0

    total = 0
    for name, shape in shapes:
        tensor = (torch.randn(shape, generator=generator) * 0.02).to(torch.bfloat16)
        current[name] = tensor
        size += tensor.numel() * 2
        total += tensor.numel() * 2
        if size >= 1e9:
            flush()
    flush()
    (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                       "weight_map": weight_map}))
    return directory, total


def qwq32b_resident_gb() -> dict:
    """What the engine keeps resident for QwQ-32B per quantization (its real modules on the meta device; float
    tensors, scales included, in bf16: QwQ's dtype). `qwq info` reports the same figures (a test checks it)."""
    from qwq.config import QWQ_32B
    from qwq.engine.quant import QuantSpec
    from qwq.engine.quant_io import resident_bytes

    out = {}
    for spec in (QuantSpec("int4", 128), QuantSpec("int4", 128, embedding="none"), QuantSpec("int4", 32),
                 QuantSpec("int8")):
        label = f"{spec.method}" + (f" g{spec.group_size}" if spec.method == "int4" else "") + \
            (", float embedding" if spec.embedding == "none" else "")
        out[label] = round(resident_bytes(QWQ_32B, spec) / 1e9, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gb", type=float, default=3.0, help="size of the synthetic bf16 checkpoint")
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="qwq-quant-bench-"))
    try:
        start = time.perf_counter()
        source, total = synthetic_checkpoint(work / "float", args.gb)
        print(f"synthetic checkpoint: {total / 1e9:.2f} GB in {len(list(source.glob('*.safetensors')))} shards "
              f"({time.perf_counter() - start:.0f}s to write)")
        for method in ("int4", "int8"):
            start = time.perf_counter()
            proc = subprocess.run([sys.executable, "-m", "qwq", "quantize", "-m", str(source), "--method", method,
                                   "--max-shard-size", "500MB", "--out", str(work / method)],
                                  capture_output=True, text=True)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
            if proc.returncode:
                print(proc.stderr)
                raise SystemExit(proc.returncode)
            out_size = sum(p.stat().st_size for p in (work / method).glob("*.safetensors")) / 1e9
            print(f"qwq quantize {method}: {total / 1e9:.2f} GB -> {out_size:.2f} GB in "
                  f"{time.perf_counter() - start:.0f}s, peak RSS of the child (max so far) {peak:.2f} GB "
                  f"= {peak / (total / 1e9):.2f}x the input")
        print("QwQ-32B resident weights (meta-device accounting, GB = 1e9 bytes):", json.dumps(qwq32b_resident_gb()))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
