"""Load a model for the engine: float, quantized on the fly, a saved quantized checkpoint, or a GGUF repacked
straight into the int4/int8 kernels' formats.

A GGUF converted to int4/int8 is remembered in the qwq cache (`<cache>/converted/<key>/`, keyed by the file's
identity, the spec, the dtype and the format version), so later loads are a memory map instead of a conversion.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from qwq.config import ModelConfig
from qwq.engine.quant import QuantSpec, quantize_model
from qwq.utils.errors import ModelNotFoundError, UsageError

QUANT_CHOICES = ("none", "int8", "int4", "w8a8")
CONVERSION_FORMAT_VERSION = 1
_DTYPE_NAMES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                "float16": torch.float16, "fp16": torch.float16}


def parse_dtype(dtype: torch.dtype | str | None, device: str = "cpu") -> torch.dtype:
    """None/"auto": float32 on CPU (the quantized kernels cast to bf16 internally), bfloat16 on GPUs."""
    if dtype is None or dtype == "auto":
        return torch.float32 if torch.device(device).type == "cpu" else torch.bfloat16
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPE_NAMES:
        raise UsageError(f"unknown dtype {dtype!r}: expected one of {', '.join(_DTYPE_NAMES)} or auto")
    return _DTYPE_NAMES[dtype]


@dataclass
class EngineModel:
    config: ModelConfig
    model: torch.nn.Module
    tokenizer: Any
    chat_template: Any
    source: Any
    report: dict = field(default_factory=dict)


def _conversion_dir(path: Path, spec: QuantSpec, dtype: torch.dtype) -> Path:
    from qwq.utils.paths import cache_dir

    stat = path.stat()
    identity = {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns,
                "spec": spec.to_dict(), "dtype": str(dtype), "version": CONVERSION_FORMAT_VERSION,
                "torch": torch.__version__.split("+")[0]}
    key = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / "converted" / f"{path.stem}-{spec.method}-g{spec.group_size}-{key}"


def _prune_stale_conversions(current: Path) -> None:
    """Remove older conversions of the same file with the same method (another key: the file, the spec or the
    format changed since), so the cache holds one per (file, method, group size)."""
    import shutil

    prefix = current.name.rsplit("-", 1)[0] + "-"
    for sibling in current.parent.glob(prefix + "*"):
        if sibling != current and sibling.is_dir() and len(sibling.name) == len(current.name):
            shutil.rmtree(sibling, ignore_errors=True)


def load_gguf_for_engine(path: Path, spec: QuantSpec, dtype: torch.dtype, use_cache: bool = True,
                         tokenizer=None) -> tuple[ModelConfig, torch.nn.Module, dict]:
    from qwq.engine.quant_gguf import load_gguf_quantized
    from qwq.engine.quant_io import load_quantized_checkpoint, save_quantized_checkpoint

    report: dict = {}
    target = _conversion_dir(path, spec, dtype) if use_cache else None
    if target is not None and (target / "quantization.json").is_file():
        config, _, model = load_quantized_checkpoint(target)
        report["conversion"] = f"cached: {target}"
        return config, model, report
    if spec.method == "w8a8":  # needs activation statistics: decode to floats, calibrate, quantize
        from qwq.engine.quant_w8a8 import w8a8_from_float_model
        from qwq.model.gguf import load_gguf_model

        config, model = load_gguf_model(path, dtype=torch.float32)
        w8a8_from_float_model(model, tokenizer)
        for name, param in model.named_parameters():  # norms and biases in the activation dtype
            param.data = param.data.to(dtype)
    else:
        modules: dict = {}
        config, model = load_gguf_quantized(path, spec, dtype=dtype, report=modules)
        report["modules"] = modules
    if target is not None:
        try:
            save_quantized_checkpoint(model, config, spec, target)
            report["conversion"] = f"converted and cached: {target}"
            _prune_stale_conversions(target)
        except OSError as exc:  # a full or read-only cache only costs the next load its speed
            report["conversion"] = f"converted (not cached: {exc})"
    return config, model, report


def load_for_engine(spec: str, quant: str = "none", group_size: int | None = None,
                    dtype: torch.dtype | str | None = None, device: str = "cpu",
                    cache_conversion: bool = True) -> EngineModel:
    from qwq.engine.quant_io import load_quantized_checkpoint, read_spec
    from qwq.model.loading import load_chat_template, load_model, load_tokenizer, resolve

    if quant not in QUANT_CHOICES:
        raise UsageError(f"--quant must be one of {', '.join(QUANT_CHOICES)}, got {quant!r}")
    torch_dtype = parse_dtype(dtype, device)
    resolved = resolve(spec)
    report: dict = {}
    if resolved.kind == "hf" and read_spec(resolved.path) is not None:
        tokenizer = load_tokenizer(resolved)
        if torch.device(device).type != "cpu":
            raise UsageError("quantized checkpoints load on CPU only for now (use the float checkpoint on GPU)")
        config, saved_spec, model = load_quantized_checkpoint(resolved.path, torch_dtype)
        if quant != "none" and quant != saved_spec.method:
            raise UsageError(f"{resolved.path} is already quantized ({saved_spec.method}); drop --quant {quant}")
        report["quantization"] = saved_spec.to_dict()
    elif resolved.kind == "gguf" and quant != "none":
        if torch.device(device).type != "cpu":
            raise UsageError("the GGUF int4/int8 path runs on CPU; on GPU use --quant none")
        from qwq.engine.quant_gguf import gguf_int4_spec
        from qwq.model.gguf import GGUFCheckpoint

        tokenizer = load_tokenizer(resolved)
        if quant == "int4":  # the int4 mix (int8 where the model is sensitive); 32: Q4_K blocks repack exactly
            qspec = gguf_int4_spec(GGUFCheckpoint.open(resolved.path).config, group_size or 32)
        else:
            qspec = QuantSpec(quant, embedding="none" if quant == "w8a8" else "int8")
        config, model, report = load_gguf_for_engine(resolved.path, qspec, torch_dtype, cache_conversion,
                                                     tokenizer=tokenizer)
        report["quantization"] = qspec.to_dict()
    else:
        loaded = load_model(spec, dtype=torch_dtype, device=device)
        config, model, tokenizer = loaded.config, loaded.model, loaded.tokenizer
        if quant == "w8a8":
            from qwq.engine.quant_w8a8 import w8a8_from_float_model

            w8a8_from_float_model(model, tokenizer)
            report["quantization"] = QuantSpec("w8a8", embedding="none").to_dict()
        elif quant != "none":
            qspec = QuantSpec(quant, group_size or 128)
            quantize_model(model, qspec)
            report["quantization"] = qspec.to_dict()
    try:
        template = load_chat_template(tokenizer)
    except ModelNotFoundError:  # no template: the engine still runs raw prompts; engine.chat() says why not
        template = None
    return EngineModel(config, model.eval(), tokenizer, template, resolved, report)
