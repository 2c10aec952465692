"""Resolve a model spec (`-m`) and load a model, its tokenizer and its chat template.

A spec is a HF checkpoint directory (config.json + safetensors), a `.gguf` file, a qwq run/checkpoint directory, or a
name: `qwq-32b` (config only), `qwen2.5-coder-0.5b` (the real GGUF from the registry packages), `tiny` (the embedded
model `qwq pipeline` trains). Resolution never guesses from file names beyond the `.gguf` suffix and the GGUF magic.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qwq.config import ModelConfig, PRESETS
from qwq.utils.errors import ModelNotFoundError
from qwq.utils.paths import package_dir

if TYPE_CHECKING:
    from qwq.tokenizer.chat import ChatTemplate
    from qwq.tokenizer.tokenizer import Tokenizer

NAMES = ("qwq-32b", "qwen2.5-coder-0.5b", "tiny")
GGUF_MAGIC = b"GGUF"


def tiny_checkpoint_dir() -> Path:
    """The trained tiny checkpoint shipped inside the package."""
    return package_dir() / "assets" / "tiny"


@dataclass(frozen=True)
class ResolvedModel:
    spec: str
    kind: str  # "hf" | "gguf" | "config"
    path: Path | None
    name: str | None = None

    @property
    def has_weights(self) -> bool:
        return self.kind != "config"


def _checkpoint_in_run_dir(path: Path) -> Path | None:
    """A qwq run directory keeps its final HF-format model under `final/` (or the newest `checkpoints/step-*/model`)."""
    if (path / "final" / "config.json").is_file():
        return path / "final"
    steps = sorted((path / "checkpoints").glob("step-*/model/config.json")) if (path / "checkpoints").is_dir() else []
    return steps[-1].parent if steps else None


def resolve(spec: str) -> ResolvedModel:
    path = Path(spec).expanduser()
    if path.is_dir():
        # A run directory may keep its own config.json (the pipeline's), so look for its model first.
        inner = _checkpoint_in_run_dir(path)
        if inner is not None:
            return ResolvedModel(spec, "hf", inner)
        if (path / "config.json").is_file():
            return ResolvedModel(spec, "hf", path)
        raise ModelNotFoundError(f"{path}: a directory without config.json (not a HF checkpoint or a qwq run)")
    if path.is_file():
        with open(path, "rb") as f:
            magic = f.read(4)
        if magic == GGUF_MAGIC:
            return ResolvedModel(spec, "gguf", path)
        raise ModelNotFoundError(f"{path}: not a GGUF file (magic {magic!r}) and not a checkpoint directory")
    if spec == "qwen2.5-coder-0.5b":
        from qwq.model.hub import ensure_real_model

        return ResolvedModel(spec, "gguf", ensure_real_model(), name=spec)
    if spec == "tiny":
        tiny = tiny_checkpoint_dir()
        if not (tiny / "config.json").is_file():
            raise ModelNotFoundError("the tiny model is not in this installation (qwq/assets/tiny): run `qwq pipeline` "
                                     "and pass its run directory with -m")
        return ResolvedModel(spec, "hf", tiny, name=spec)
    if spec in PRESETS:
        return ResolvedModel(spec, "config", None, name=spec)
    if spec.endswith(".gguf") or "/" in spec:
        raise ModelNotFoundError(f"{spec}: no such file or directory")
    raise ModelNotFoundError(f"unknown model {spec!r}: give a HF checkpoint dir, a .gguf file, a qwq run dir, "
                             f"or one of {', '.join(NAMES)}")


def resolve_config(spec: str) -> ModelConfig:
    """The config of a spec, without loading any weights."""
    resolved = resolve(spec)
    if resolved.kind == "config":
        return PRESETS[resolved.name]
    if resolved.kind == "hf":
        return ModelConfig.from_hf(resolved.path)
    from qwq.model.gguf import GGUFCheckpoint

    return GGUFCheckpoint.open(resolved.path).config


@dataclass
class LoadedModel:
    config: ModelConfig
    model: Any  # Qwen2ForCausalLM
    tokenizer: "Tokenizer"
    chat_template: "ChatTemplate"
    source: ResolvedModel


def load_tokenizer(resolved: ResolvedModel) -> "Tokenizer":
    from qwq.tokenizer.tokenizer import Tokenizer

    if resolved.kind == "gguf":
        return Tokenizer.from_gguf(resolved.path)
    if resolved.kind == "hf":
        return Tokenizer.from_hf_dir(resolved.path)
    raise ModelNotFoundError(f"{resolved.spec}: a config-only model has no tokenizer; pass a checkpoint with -m")


def load_chat_template(tokenizer: "Tokenizer") -> "ChatTemplate":
    """The checkpoint's own template; QwQ's template when the checkpoint ships none but speaks QwQ (has `</think>`)."""
    from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate

    source = tokenizer.chat_template
    if source is None:
        if tokenizer.token_to_id("</think>") is None:
            raise ModelNotFoundError(f"{tokenizer.source}: the checkpoint has no chat template")
        source = QWQ_TEMPLATE
    return ChatTemplate(source, special_tokens={"eos_token": tokenizer.eos_token, "pad_token": tokenizer.pad_token,
                                                "bos_token": tokenizer.bos_token}, name=f"{tokenizer.source} template")


def load_model(spec: str, dtype: Any = None, device: str = "cpu") -> LoadedModel:
    """Load weights (dequantized to `dtype`; the engine has its own quantized path), tokenizer and template."""
    import torch

    resolved = resolve(spec)
    if resolved.kind == "config":
        raise ModelNotFoundError(f"{spec}: only a config is known for this name; give its checkpoint directory or "
                                 f"GGUF file with -m to load weights")
    if resolved.kind == "gguf":
        from qwq.model.gguf import load_gguf_model

        config, model = load_gguf_model(resolved.path, dtype=dtype or torch.float32, device=device)
    else:
        from qwq.model.weights import load_hf_checkpoint

        config, model = load_hf_checkpoint(resolved.path, dtype=dtype, device=device)
    tokenizer = load_tokenizer(resolved)
    return LoadedModel(config, model.eval(), tokenizer, load_chat_template(tokenizer), resolved)
