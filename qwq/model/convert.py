"""`qwq convert -m MODEL --out DIR [--dtype bfloat16|float16|float32]`: write a Hugging Face checkpoint directory.

MODEL is a `.gguf` file, a HF checkpoint directory, a qwq run directory or a model name (`qwen2.5-coder-0.5b`).
The result (config.json, safetensors shards, tokenizer.json, tokenizer_config.json with the chat template) loads in
qwq and in transformers. GGUF weights are dequantized: converting does not recover what quantization lost, it only
changes the container.

The weights directory is built aside and swapped in whole, so an interrupted run leaves no half checkpoint. Because
that swap replaces whatever is at DIR, a non-empty DIR is refused unless `--force` is given.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from qwq.utils.errors import ModelNotFoundError, UsageError

DTYPES = ("bfloat16", "float16", "float32")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", required=True,
                        help="a .gguf file, a HF checkpoint directory, a qwq run directory or a model name")
    parser.add_argument("--out", required=True, type=Path, help="the HF checkpoint directory to write")
    parser.add_argument("--dtype", choices=DTYPES, default="bfloat16", help="dtype of the saved weights")
    parser.add_argument("--max-shard-mb", type=int, default=None,
                        help="largest safetensors shard in MB (default: transformers' 5 GB)")
    parser.add_argument("--force", action="store_true", help="replace a non-empty --out directory")
    parser.add_argument("--json", action="store_true", help="print a JSON summary instead of one line")


def convert(spec: str, out: str | Path, dtype: str = "bfloat16", force: bool = False,
            max_shard_bytes: int | None = None) -> dict:
    """Convert `spec` to a HF checkpoint at `out`; returns a summary (source, parameters, bytes, seconds)."""
    import torch

    from qwq.model.loading import load_tokenizer, resolve
    from qwq.model.weights import DEFAULT_MAX_SHARD_BYTES, save_hf_checkpoint

    if dtype not in DTYPES:
        raise UsageError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    out = Path(out).expanduser()
    if max_shard_bytes is not None and max_shard_bytes <= 0:
        raise UsageError(f"--max-shard-mb must be positive, got {max_shard_bytes // 10**6}")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UsageError(f"--out {out} is not empty; pass --force to replace it")

    started = time.perf_counter()
    resolved = resolve(spec)
    if resolved.kind == "config":
        raise ModelNotFoundError(f"{spec}: only a config is known for this name; give a checkpoint with -m")
    if resolved.path is not None and out.resolve() in (resolved.path.resolve(), *resolved.path.resolve().parents):
        raise UsageError(f"--out {out} would replace the model being converted ({resolved.path})")
    tokenizer = load_tokenizer(resolved)  # before writing anything: a bad tokenizer must not leave a half result
    torch_dtype = getattr(torch, dtype)
    if resolved.kind == "gguf":
        from qwq.model.gguf import load_gguf_model

        config, model = load_gguf_model(resolved.path, dtype=torch_dtype)
    else:
        from qwq.model.weights import load_hf_checkpoint

        config, model = load_hf_checkpoint(resolved.path, dtype=torch_dtype)
    loaded = time.perf_counter()
    save_hf_checkpoint(model, config, out, max_shard_bytes=max_shard_bytes or DEFAULT_MAX_SHARD_BYTES)
    tokenizer.save(out)
    saved = time.perf_counter()
    files = sorted(p.name for p in out.iterdir())
    return {
        "source": str(resolved.path), "source_kind": resolved.kind, "out": str(out), "dtype": dtype,
        "parameters": model.num_parameters(), "tie_word_embeddings": config.tie_word_embeddings,
        "bytes": sum((out / f).stat().st_size for f in files), "files": files,
        "load_seconds": round(loaded - started, 3), "save_seconds": round(saved - loaded, 3),
    }


def main(args: argparse.Namespace) -> int:
    max_shard = args.max_shard_mb * 10**6 if args.max_shard_mb is not None else None
    summary = convert(args.model, args.out, dtype=args.dtype, force=args.force, max_shard_bytes=max_shard)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"wrote {summary['out']}: {summary['parameters']:,} parameters, {summary['dtype']}, "
              f"{summary['bytes'] / 1e6:.1f} MB in {len(summary['files'])} files "
              f"(load {summary['load_seconds']:.1f} s, save {summary['save_seconds']:.1f} s)")
    return 0
