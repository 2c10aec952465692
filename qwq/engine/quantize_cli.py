"""`qwq quantize`: write an int8/int4 weight-only checkpoint, shard by shard with bounded memory.

A HF safetensors checkpoint is streamed one tensor at a time (peak memory: one tensor plus one output shard); a GGUF
is repacked tensor by tensor (Q4_K blocks exactly). The result loads with `-m OUT` everywhere (`qwq generate`, the
server...), with the spec read from OUT/quantization.json.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from qwq.utils.errors import UsageError


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", required=True, help="HF checkpoint dir, .gguf file or model name")
    parser.add_argument("--method", "--quant", dest="method", choices=("int8", "int4", "w8a8"), default="int4",
                        help="int8/int4 weight-only, or w8a8 (int8 weights and activations; calibrated on "
                             "built-in text, loads the whole float model in memory)")
    parser.add_argument("--group-size", type=int, default=None,
                        help="int4 group size: 32, 64, 128 or 256 (default 128; 32 for GGUF sources)")
    parser.add_argument("--keep", action="append", default=[], metavar="PATTERN",
                        help="module name or glob left in floating point (repeatable), e.g. lm_head")
    parser.add_argument("--int8", action="append", default=[], metavar="PATTERN",
                        help="module name or glob quantized to int8 instead (repeatable), e.g. '*.down_proj'")
    parser.add_argument("--dtype", default="bfloat16", help="dtype of the tensors that stay float (embeddings, norms)")
    parser.add_argument("--max-shard-size", default="2GB", help="largest output shard, e.g. 500MB, 2GB")
    parser.add_argument("--all-int4", action="store_true",
                        help="GGUF sources: int4 everywhere instead of the default mix (int8 for the LM head, "
                             "attention and the first/last layers' MLPs); less accurate")
    parser.add_argument("--gptq", action="store_true",
                        help="GPTQ rounding calibrated on built-in text (int4; loads the whole float model in memory)")
    parser.add_argument("--out", "-o", type=Path, required=True, help="output directory (replaced if it exists)")


def parse_size(text: str) -> int:
    units = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "B": 1}
    upper = text.strip().upper()
    for unit in sorted(units, key=len, reverse=True):
        if upper.endswith(unit):
            number = upper[: -len(unit)].strip()
            break
    else:
        unit, number = "B", upper
    try:
        value = int(float(number) * units[unit])
    except ValueError:
        raise UsageError(f"--max-shard-size: cannot read {text!r} (e.g. 500MB, 2GB)") from None
    if value <= 0:
        raise UsageError(f"--max-shard-size must be positive, got {text!r}")
    return value


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def main(args: argparse.Namespace) -> int:
    from qwq.engine.loading import parse_dtype
    from qwq.engine.quant import QuantSpec
    from qwq.engine.quant_io import quantize_checkpoint, save_quantized_checkpoint
    from qwq.model.loading import load_tokenizer, resolve

    modules = {p: "none" for p in args.keep}
    modules.update({p: "int8" for p in args.int8})
    resolved = resolve(args.model)
    if resolved.kind == "config":
        raise UsageError(f"{args.model}: only a config is known for this name; give a checkpoint to quantize")
    default_group = 32 if resolved.kind == "gguf" else 128
    spec = QuantSpec(args.method, args.group_size or default_group, modules)
    if resolved.kind == "gguf" and args.method == "int4" and not modules and not args.all_int4:
        from qwq.engine.quant_gguf import gguf_int4_spec
        from qwq.model.gguf import GGUFCheckpoint

        spec = gguf_int4_spec(GGUFCheckpoint.open(resolved.path).config, spec.group_size)
    dtype = parse_dtype(args.dtype)
    max_shard = parse_size(args.max_shard_size)
    if args.out.resolve() == Path(resolved.path).resolve():
        raise UsageError("--out must differ from the source checkpoint")
    start = time.perf_counter()
    if args.method == "w8a8":
        import torch

        from qwq.engine.quant_w8a8 import w8a8_from_float_model
        from qwq.model.loading import load_model

        loaded = load_model(args.model, dtype=torch.float32)
        w8a8_from_float_model(loaded.model, loaded.tokenizer, skip=[p for p in args.keep])
        for name, param in loaded.model.named_parameters():
            param.data = param.data.to(dtype)
        spec = QuantSpec("w8a8", embedding="none")
        save_quantized_checkpoint(loaded.model, loaded.config, spec, args.out, tokenizer=loaded.tokenizer,
                                  max_shard_bytes=max_shard)
    elif args.gptq:
        if spec.method != "int4":
            raise UsageError("--gptq applies to int4")
        import torch

        from qwq.engine.calibration import calibration_token_lists
        from qwq.engine.gptq import gptq_quantize_model
        from qwq.model.loading import load_model

        loaded = load_model(args.model, dtype=torch.float32)
        gptq_quantize_model(loaded.model, spec, calibration_token_lists(loaded.tokenizer))
        if dtype != torch.float32:
            for name, param in loaded.model.named_parameters():
                param.data = param.data.to(dtype)
        save_quantized_checkpoint(loaded.model, loaded.config, spec, args.out, tokenizer=loaded.tokenizer,
                                  max_shard_bytes=max_shard)
    elif resolved.kind == "gguf":
        from qwq.engine.quant_gguf import load_gguf_quantized

        config, model = load_gguf_quantized(resolved.path, spec, dtype=dtype)
        save_quantized_checkpoint(model, config, spec, args.out, tokenizer=load_tokenizer(resolved),
                                  max_shard_bytes=max_shard)
    else:
        from qwq.utils.progress import make_progress
        from qwq.model.weights import index_checkpoint

        total = len(index_checkpoint(resolved.path))
        with make_progress() as progress:
            task = progress.add_task("quantizing", total=total)
            quantize_checkpoint(resolved.path, args.out, spec, dtype=dtype, max_shard_bytes=max_shard,
                                progress=lambda name: progress.advance(task))
    size = sum(p.stat().st_size for p in args.out.glob("*.safetensors"))
    print(f"wrote {args.out} ({size / 1e9:.3f} GB, {spec.method}"
          f"{f' g{spec.group_size}' if spec.method == 'int4' else ''}) in {time.perf_counter() - start:.1f}s, "
          f"peak RSS {peak_rss_bytes() / 1e9:.2f} GB")
    return 0
