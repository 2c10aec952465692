"""`qwq info -m M [--json]`: a model's config, exact parameter count and memory needs, without loading weights.

The parameter count is taken from the real architecture built on the meta device (no memory, no weights), so it
checks the config arithmetic in `ModelConfig.num_parameters()` rather than repeating it.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
from pathlib import Path

from qwq.config import PRESETS, ModelConfig
from qwq.utils.errors import ModelNotFoundError

KV_DTYPE = "bfloat16"
QUANTS = ("none", "int8", "int4")


def add_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-m", "--model", required=True,
                        help=f"a HF checkpoint directory or a model name ({', '.join(PRESETS)})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _shared_resolver():
    """The project's model-spec resolver (it also knows GGUF files and run directories), when installed."""
    for module_name in ("qwq.model.resolve", "qwq.model.loading"):
        try:
            if importlib.util.find_spec(module_name) is None:
                continue
        except ModuleNotFoundError:
            continue
        resolver = getattr(importlib.import_module(module_name), "resolve_config", None)
        if resolver is not None:
            return resolver
    return None


def resolve_config(spec: str) -> ModelConfig:
    resolver = _shared_resolver()
    if resolver is not None:
        try:
            return resolver(spec)
        except ModelNotFoundError:
            # A named model whose files are not installed still has a known architecture, which is all info needs.
            if spec in PRESETS and not Path(spec).exists():
                return PRESETS[spec]
            raise
    path = Path(spec).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path}: a directory without config.json (not a HF checkpoint)")
        return ModelConfig.from_hf(path)
    if spec in PRESETS:
        return PRESETS[spec]
    if path.exists():
        raise ModelNotFoundError(f"{path}: not a HF checkpoint directory")
    raise ModelNotFoundError(f"unknown model {spec!r}: give a HF checkpoint directory or one of "
                             f"{', '.join(PRESETS)}")


def count_parameters(config: ModelConfig) -> int:
    import torch

    from qwq.model.qwen2 import meta_model

    return meta_model(config).num_parameters()


def describe(spec: str, config: ModelConfig) -> dict:
    kv = config.kv_bytes_per_token(KV_DTYPE)
    return {
        "model": spec,
        "config": config.to_hf_dict(),
        "num_parameters": count_parameters(config),
        # What the engine keeps resident: int8/int4 quantize every Linear (lm_head too) and store an untied
        # embedding as int8 rows; norms and biases stay bf16.
        "weight_bytes": {"float32": config.weight_bytes("none", dtype="float32"),
                         **{"bfloat16" if q == "none" else q: config.weight_bytes(q, dtype="bfloat16") for q in QUANTS}},
        "kv_dtype": KV_DTYPE,
        "kv_bytes_per_token": kv,
        "kv_bytes_at_max_context": kv * config.max_position_embeddings,
    }


def _gib(nbytes: int) -> str:
    return f"{nbytes / 2**30:,.2f} GiB"


def _print_table(info: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    cfg = info["config"]
    table = Table(title=f"qwq info: {info['model']}", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    for key in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                "head_dim", "vocab_size", "max_position_embeddings", "rope_theta", "rope_scaling", "rms_norm_eps",
                "tie_word_embeddings", "torch_dtype"):
        if key in cfg:
            table.add_row(key, str(cfg[key]))
        if key == "num_key_value_heads" and "head_dim" not in cfg:
            table.add_row("head_dim", f"{cfg['hidden_size'] // cfg['num_attention_heads']} (derived)")
    table.add_row("parameters", f"{info['num_parameters']:,}")
    for quant, nbytes in info["weight_bytes"].items():
        table.add_row(f"weights ({quant})", f"{_gib(nbytes)}  ({nbytes:,} bytes)")
    table.add_row(f"KV cache per token ({info['kv_dtype']})", f"{info['kv_bytes_per_token']:,} bytes")
    table.add_row(f"KV cache at {cfg['max_position_embeddings']:,} tokens", _gib(info["kv_bytes_at_max_context"]))
    Console().print(table)


def main(args: argparse.Namespace) -> int:
    config = resolve_config(args.model)
    info = describe(args.model, config)
    if args.json:
        print(json.dumps(info))
    else:
        _print_table(info)
    return 0
