"""ModelConfig: the Qwen2 / QwQ architecture hyper-parameters, with Hugging Face field names.

A config comes from a HF checkpoint directory (`config.json` + optional `generation_config.json`), from GGUF
metadata, or from a preset name. Field names are HF's so that `to_hf_dict()` writes a config.json transformers reads.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from qwq.utils.errors import ConfigError

# Bytes per element of the dtypes qwq stores weights and KV caches in.
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


SAMPLING_KEYS = frozenset({"temperature", "top_p", "top_k", "min_p"})


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    max_position_embeddings: int = 32768
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    rope_scaling: dict | None = None
    tie_word_embeddings: bool = False
    head_dim: int | None = None
    hidden_act: str = "silu"
    bos_token_id: int | None = None
    eos_token_id: int | tuple[int, ...] | None = None
    pad_token_id: int | None = None
    torch_dtype: str = "bfloat16"
    model_type: str = "qwen2"
    # Sampling defaults from generation_config.json (temperature, top_p, top_k, ...), if the checkpoint has one.
    generation: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"config field {name!r} must be a positive integer, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                              f"num_key_value_heads ({self.num_key_value_heads})")
        if self.head_dim is None and self.hidden_size % self.num_attention_heads:
            raise ConfigError(f"hidden_size ({self.hidden_size}) is not divisible by num_attention_heads "
                              f"({self.num_attention_heads}) and no head_dim is given")
        if self.hidden_act != "silu":
            raise ConfigError(f"config field 'hidden_act' must be 'silu' for Qwen2, got {self.hidden_act!r}")
        if self.torch_dtype not in DTYPE_BYTES:
            raise ConfigError(f"config field 'torch_dtype' must be one of {sorted(DTYPE_BYTES)}, got {self.torch_dtype!r}")
        if self.rope_scaling is not None:
            kind = self.rope_scaling.get("rope_type", self.rope_scaling.get("type"))
            if kind not in ("default", "yarn"):
                raise ConfigError(f"config field 'rope_scaling.type' must be 'default' or 'yarn', got {kind!r}")
            if kind == "yarn":
                for key in ("factor", "original_max_position_embeddings"):
                    if key not in self.rope_scaling:
                        raise ConfigError(f"config field 'rope_scaling.{key}' is required for yarn")

    # ---- derived sizes -------------------------------------------------------------------------------------------
    @property
    def dim_per_head(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @property
    def eos_token_ids(self) -> tuple[int, ...]:
        if self.eos_token_id is None:
            return ()
        if isinstance(self.eos_token_id, int):
            return (self.eos_token_id,)
        return tuple(self.eos_token_id)

    @property
    def rope_type(self) -> str:
        if not self.rope_scaling:
            return "default"
        return self.rope_scaling.get("rope_type", self.rope_scaling.get("type", "default"))

    def num_parameters(self) -> int:
        """Exact parameter count from the architecture (checked against a meta-device model in the tests)."""
        h, d, kv = self.hidden_size, self.dim_per_head, self.num_key_value_heads
        q_out, kv_out = self.num_attention_heads * d, kv * d
        attn = h * q_out + q_out + 2 * (h * kv_out + kv_out) + q_out * h
        mlp = 3 * h * self.intermediate_size
        layer = attn + mlp + 2 * h
        embed = self.vocab_size * h
        head = 0 if self.tie_word_embeddings else self.vocab_size * h
        return self.num_hidden_layers * layer + embed + head + h

    def linear_weight_shapes(self) -> list[tuple[int, int]]:
        """(out, in) of every Linear weight a weight-only quantizer would touch (per layer x layers, plus lm_head)."""
        h, d = self.hidden_size, self.dim_per_head
        q_out, kv_out = self.num_attention_heads * d, self.num_key_value_heads * d
        per_layer = [(q_out, h), (kv_out, h), (kv_out, h), (h, q_out),
                     (self.intermediate_size, h), (self.intermediate_size, h), (h, self.intermediate_size)]
        shapes = per_layer * self.num_hidden_layers
        if not self.tie_word_embeddings:
            shapes.append((self.vocab_size, h))
        return shapes

    def weight_bytes(self, quant: str = "none", dtype: str = "bfloat16", group_size: int = 128) -> int:
        """Resident weight bytes: `none` keeps everything at `dtype`; `int8` (per-channel scale) and `int4`
        (per-group scale + zero) quantize the Linear weights (lm_head included) and, as the engine's int8/int4 modes
        do, store an untied token embedding as int8 rows with one scale per row; norms and biases stay at `dtype`.
        tests/engine/test_quant.py checks this against the engine's own modules on the meta device."""
        elem = DTYPE_BYTES[dtype]
        total = self.num_parameters()
        if quant == "none":
            return total * elem
        linear = self.linear_weight_shapes()
        linear_params = sum(o * i for o, i in linear)
        embedding = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        rest = (total - linear_params - embedding) * elem + embedding + (self.vocab_size * elem if embedding else 0)
        if quant == "int8":
            return rest + linear_params + sum(o for o, _ in linear) * elem
        if quant == "int4":
            groups = sum(o * math.ceil(i / group_size) for o, i in linear)
            return rest + linear_params // 2 + groups * 2 * elem
        raise ConfigError(f"unknown quantization {quant!r}: expected none, int8 or int4")

    def kv_bytes_per_token(self, dtype: str | None = None) -> int:
        elem = DTYPE_BYTES[dtype or self.torch_dtype]
        return 2 * self.num_hidden_layers * self.num_key_value_heads * self.dim_per_head * elem

    # ---- (de)serialisation ---------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "config") -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        # A null field means "not set" (fresh transformers configs write e.g. "dtype": null): keep our default.
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in kwargs]
        if missing:
            raise ConfigError(f"{source}: missing required field(s) {', '.join(missing)}")
        if data.get("model_type", "qwen2") not in ("qwen2",):
            raise ConfigError(f"{source}: model_type {data.get('model_type')!r} is not supported (only 'qwen2')")
        if isinstance(kwargs.get("eos_token_id"), list):
            kwargs["eos_token_id"] = tuple(kwargs["eos_token_id"])
        if data.get("dtype") and not data.get("torch_dtype"):  # transformers >= 4.56 writes `dtype`
            kwargs["torch_dtype"] = data["dtype"]
        if isinstance(kwargs.get("rope_scaling"), dict):
            kwargs["rope_scaling"] = dict(kwargs["rope_scaling"])
        # transformers >= 5 moves rope_theta into rope_parameters
        params = data.get("rope_parameters")
        if isinstance(params, dict):
            if "rope_theta" in params and "rope_theta" not in data:
                kwargs["rope_theta"] = params["rope_theta"]
            kind = params.get("rope_type", params.get("type"))
            if kind and kind != "default" and not kwargs.get("rope_scaling"):
                kwargs["rope_scaling"] = {k: v for k, v in params.items() if k != "rope_theta"}
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{source}: {exc}") from None

    @classmethod
    def from_hf(cls, directory: str | Path) -> "ModelConfig":
        directory = Path(directory)
        path = directory / "config.json"
        if not path.is_file():
            raise ConfigError(f"{directory}: no config.json (not a Hugging Face checkpoint directory)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: invalid JSON ({exc})") from None
        gen_path = directory / "generation_config.json"
        if gen_path.is_file():
            try:
                gen = json.loads(gen_path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{gen_path}: invalid JSON ({exc})") from None
            data = dict(data, generation={k: v for k, v in gen.items() if not k.startswith("_")})
            if "eos_token_id" in gen:  # generation_config's eos list (e.g. [151645, 151643]) wins
                data["eos_token_id"] = gen["eos_token_id"]
        return cls.from_dict(data, source=str(path))

    def to_hf_dict(self) -> dict:
        data = {
            "architectures": ["Qwen2ForCausalLM"],
            "model_type": self.model_type,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "num_key_value_heads": self.num_key_value_heads,
            "max_position_embeddings": self.max_position_embeddings,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_theta": self.rope_theta,
            "rope_scaling": self.rope_scaling,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": self.hidden_act,
            "torch_dtype": self.torch_dtype,
            "use_sliding_window": False,
            "attention_dropout": 0.0,
        }
        if self.head_dim is not None:
            data["head_dim"] = self.head_dim
        for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(self, key)
            if value is not None:
                data[key] = list(value) if isinstance(value, tuple) else value
        return data

    def save_hf(self, directory: str | Path) -> None:
        from qwq.utils.atomic import atomic_write_text

        directory = Path(directory)
        atomic_write_text(directory / "config.json", json.dumps(self.to_hf_dict(), indent=2) + "\n")
        if self.generation:
            generation = dict(self.generation)
            if SAMPLING_KEYS & generation.keys():
                # sampling defaults are only valid with do_sample (QwQ's own file says so); transformers refuses to
                # save, and ignores on load, a generation config with a temperature but no do_sample
                generation.setdefault("do_sample", True)
            atomic_write_text(directory / "generation_config.json", json.dumps(generation, indent=2) + "\n")

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)


# ---- presets ---------------------------------------------------------------------------------------------------
# QwQ-32B's released config.json (Qwen/QwQ-32B, Apache-2.0); a test checks it against ../shared/data/qwq-32b.
QWQ_32B = ModelConfig(
    vocab_size=152064, hidden_size=5120, intermediate_size=27648, num_hidden_layers=64, num_attention_heads=40,
    num_key_value_heads=8, max_position_embeddings=40960, rms_norm_eps=1e-5, rope_theta=1e6, rope_scaling=None,
    tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645, torch_dtype="bfloat16",
    # Model card: temperature 0.6, top_p 0.95, top_k 40 (20-40), min_p 0; never greedy in chat.
    generation={"temperature": 0.6, "top_p": 0.95, "top_k": 40, "min_p": 0.0, "max_new_tokens": 32768,
                "do_sample": True},
)

# The YaRN setting QwQ's card recommends for inputs beyond 32,768 tokens.
QWQ_YARN = {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768}

# Qwen2.5-Coder-0.5B-Instruct (the real small model shipped as a GGUF through the registry packages).
QWEN25_CODER_05B = ModelConfig(
    vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
    num_key_value_heads=2, max_position_embeddings=32768, rms_norm_eps=1e-6, rope_theta=1e6,
    tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645, pad_token_id=151643, torch_dtype="bfloat16",
)

# The tiny preset: the architecture of the embedded reasoning model `qwq pipeline` trains from scratch (~3.5M
# parameters). Its tokenizer (trained by the pipeline) defines the special-token ids, so none are fixed here.
TINY = ModelConfig(
    vocab_size=2048, hidden_size=256, intermediate_size=704, num_hidden_layers=4, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=2048, rms_norm_eps=1e-6, rope_theta=1e4,
    tie_word_embeddings=True, torch_dtype="float32",
)

PRESETS: dict[str, ModelConfig] = {"qwq-32b": QWQ_32B, "qwen2.5-coder-0.5b": QWEN25_CODER_05B, "tiny": TINY}


def preset(name: str) -> ModelConfig:
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}: expected one of {', '.join(sorted(PRESETS))}")
    return PRESETS[name]
