"""Qwen2 GGUF checkpoints: config and HF-named tensors from a GGUF file, quantized tensors kept quantized.

`GGUFCheckpoint.open(path)` reads only the header (`qwq.model.gguf_file`, ~0.2 s for a Qwen2 vocabulary) and maps
the file. Each tensor is a `GGUFTensor`: the raw ggml blocks (a numpy view of the mapping, nothing copied), the
ggml type and the logical shape in PyTorch order ([out_features, in_features] for a Linear). Nothing is decoded
until asked: `dequantize()` for floats, `unpack()` for the integer codes + scales the engine repacks into its own
int4/int8 layouts.

Names follow llama.cpp's Qwen2 converter, mapped back to Hugging Face's parameter names (the names our model uses).
Qwen2 uses NeoX-style rotary embeddings, so unlike llama the converter did not permute q/k rows: weights are used as
stored. No `output.weight` tensor means the LM head is tied to the embedding.

`GGUFCheckpoint.open` does not import torch (`qwq info` and the tokenizer path use it); decoding does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

from qwq.config import ModelConfig
from qwq.model.gguf_file import FLOAT_TYPES, SUPPORTED_TYPES, GGUFHeader, TensorInfo, read_header
from qwq.utils.errors import ConfigError, GGUFError

if TYPE_CHECKING:
    import torch

    from qwq.model.gguf_quants import Unpacked
    from qwq.model.qwen2 import Qwen2ForCausalLM

ARCHITECTURE = "qwen2"

_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight", "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight", "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight", "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_LAYER_PATTERN = re.compile(r"blk\.(\d+)\.(.+)")


def hf_tensor_name(gguf_name: str) -> str | None:
    """The Hugging Face parameter name of a Qwen2 GGUF tensor, or None for a tensor Qwen2 does not have."""
    if gguf_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[gguf_name]
    match = _LAYER_PATTERN.fullmatch(gguf_name)
    if match and match.group(2) in _LAYER_NAMES:
        return f"model.layers.{int(match.group(1))}.{_LAYER_NAMES[match.group(2)]}"
    return None


@dataclass(frozen=True, eq=False)
class GGUFTensor:
    """One tensor of a GGUF file, still in its stored (possibly quantized) form."""

    name: str  # Hugging Face name
    gguf_name: str
    ggml_type: GGMLQuantizationType
    shape: tuple[int, ...]  # PyTorch order
    raw: np.ndarray  # uint8 view of the file: [rows, bytes per row] ([bytes] for a 1-D tensor)
    source: Path

    @property
    def type_name(self) -> str:
        return self.ggml_type.name

    @property
    def is_quantized(self) -> bool:
        return self.ggml_type not in FLOAT_TYPES

    @property
    def is_supported(self) -> bool:
        return self.ggml_type in SUPPORTED_TYPES

    @property
    def block_size(self) -> int:
        """Values per block (1 for the float types)."""
        return GGML_QUANT_SIZES[self.ggml_type][0]

    @property
    def type_size(self) -> int:
        """Bytes per block."""
        return GGML_QUANT_SIZES[self.ggml_type][1]

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.raw.size

    def blocks(self) -> np.ndarray:
        """The raw blocks, [rows, blocks per row, bytes per block]: a row of a Linear weight is one output unit."""
        rows = self.numel // self.shape[-1]
        return self.raw.reshape(rows, self.shape[-1] // self.block_size, self.type_size)

    def _where(self) -> str:
        return f"{self.source}: tensor {self.gguf_name!r} ({self.name})"

    def _check_supported(self) -> None:
        if not self.is_supported:
            supported = ", ".join(sorted(t.name for t in SUPPORTED_TYPES))
            raise GGUFError(f"{self._where()} has ggml type {self.type_name}, which qwq cannot decode "
                            f"(supported: {supported})")

    def dequantize(self, dtype: "torch.dtype | None" = None, device: "torch.device | str" = "cpu") -> "torch.Tensor":
        """The tensor as floats (default float32), shape `self.shape`, decoded on `device`."""
        import torch

        from qwq.model.gguf_quants import dequantize_blocks

        self._check_supported()
        return dequantize_blocks(self.raw, self.ggml_type, self.shape, dtype or torch.float32, device)

    def unpack(self, device: "torch.device | str" = "cpu") -> "Unpacked":
        """Integer codes and per-sub-block scale/min of every block (value = scale * code - min), blocks in row
        order: block b covers values [b * block_size, (b + 1) * block_size) of the flattened tensor."""
        from qwq.model.gguf_quants import UNPACKERS, unpack_blocks

        if self.ggml_type not in UNPACKERS:
            raise GGUFError(f"{self._where()} has ggml type {self.type_name}, which has no block decoder (types "
                            f"with one: {', '.join(sorted(t.name for t in UNPACKERS))})")
        return unpack_blocks(self.raw, self.ggml_type, device)

    def __repr__(self) -> str:
        return f"GGUFTensor({self.name!r}, {self.type_name}, shape={list(self.shape)})"


def _float_dtype_name(tensors: list[TensorInfo]) -> str:
    """The dtype name weights most naturally decode to: the stored float type of most bytes, else bfloat16."""
    totals: dict[GGMLQuantizationType, int] = {}
    for info in tensors:
        totals[info.ggml_type] = totals.get(info.ggml_type, 0) + info.nbytes
    dominant = max(totals, key=totals.get) if totals else None
    return {GGMLQuantizationType.F32: "float32", GGMLQuantizationType.F16: "float16"}.get(dominant, "bfloat16")


def config_from_metadata(metadata: dict[str, Any], path: Path, vocab_rows: int, has_output: bool,
                         torch_dtype: str = "bfloat16") -> ModelConfig:
    """A ModelConfig from a Qwen2 GGUF's `qwen2.*` and `tokenizer.ggml.*` keys (every missing key named)."""
    arch = metadata.get("general.architecture")
    if arch is None:
        raise GGUFError(f"{path}: missing required metadata key 'general.architecture'")
    if arch != ARCHITECTURE:
        raise GGUFError(f"{path}: metadata 'general.architecture' is {arch!r}; qwq runs Qwen2 models ('qwen2')")

    def get(key: str, default: Any = ..., kind: type | tuple = (int,)) -> Any:
        full = f"{arch}.{key}"
        if full not in metadata:
            if default is ...:
                raise GGUFError(f"{path}: missing required metadata key {full!r}")
            return default
        value = metadata[full]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise GGUFError(f"{path}: metadata {full!r} has the wrong type ({type(value).__name__}: {value!r})")
        return value

    number = (int, float)
    hidden, heads = get("embedding_length"), get("attention.head_count")
    key_length = get("attention.key_length", None)
    head_dim = key_length if key_length is not None and heads and key_length * heads != hidden else None
    rope_scaling = None
    scaling_type = get("rope.scaling.type", None, str)
    if scaling_type == "yarn":
        rope_scaling = {"type": "yarn", "factor": float(get("rope.scaling.factor", kind=number)),
                        "original_max_position_embeddings": get("rope.scaling.original_context_length")}
    elif scaling_type not in (None, "none"):
        raise GGUFError(f"{path}: metadata '{arch}.rope.scaling.type' is {scaling_type!r}; qwq supports 'yarn' "
                        f"or none")

    def token_id(key: str) -> int | None:
        value = metadata.get(f"tokenizer.ggml.{key}")
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    try:
        return ModelConfig(
            vocab_size=vocab_rows, hidden_size=hidden, intermediate_size=get("feed_forward_length"),
            num_hidden_layers=get("block_count"), num_attention_heads=heads,
            num_key_value_heads=get("attention.head_count_kv", heads),
            max_position_embeddings=get("context_length"),
            rms_norm_eps=float(get("attention.layer_norm_rms_epsilon", kind=number)),
            rope_theta=float(get("rope.freq_base", 10000.0, number)),  # llama.cpp's default when absent
            rope_scaling=rope_scaling, tie_word_embeddings=not has_output, head_dim=head_dim,
            bos_token_id=token_id("bos_token_id"), eos_token_id=token_id("eos_token_id"),
            pad_token_id=token_id("padding_token_id"), torch_dtype=torch_dtype)
    except ConfigError as exc:
        raise GGUFError(f"{path}: {exc}") from None


@dataclass
class GGUFCheckpoint:
    path: Path
    header: GGUFHeader
    config: ModelConfig
    tensors: dict[str, GGUFTensor]  # Hugging Face name -> tensor, in file order
    unmapped: dict[str, GGUFTensor] = field(default_factory=dict)  # GGUF name -> tensors Qwen2 has no place for

    @property
    def metadata(self) -> dict[str, Any]:
        return self.header.metadata

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template")

    @classmethod
    def open(cls, path: str | Path) -> "GGUFCheckpoint":
        path = Path(path)
        header = read_header(path)
        mapped = np.memmap(path, dtype=np.uint8, mode="r") if header.tensors else np.zeros(0, np.uint8)
        tensors: dict[str, GGUFTensor] = {}
        unmapped: dict[str, GGUFTensor] = {}
        for info in header.tensors:
            name = hf_tensor_name(info.name)
            shape = info.shape
            raw = mapped[info.offset:info.offset + info.nbytes]
            if len(shape) > 1:
                raw = raw.reshape(-1, info.nbytes // max(1, int(np.prod(shape[:-1], dtype=np.int64))))
            tensor = GGUFTensor(name or info.name, info.name, info.ggml_type, shape, raw, path)
            if name is None:
                unmapped[info.name] = tensor
            else:
                tensors[name] = tensor
        embed = tensors.get("model.embed_tokens.weight")
        if embed is None:
            raise GGUFError(f"{path}: missing tensor 'token_embd.weight' (the token embedding)")
        config = config_from_metadata(header.metadata, path, vocab_rows=embed.shape[0],
                                      has_output="lm_head.weight" in tensors,
                                      torch_dtype=_float_dtype_name(header.tensors))
        return cls(path, header, config, tensors, unmapped)

    def check_against(self, expected_shapes: dict[str, tuple[int, ...]]) -> None:
        """GGUFError naming the first unexpected, missing, mis-shaped or undecodable tensor."""
        if self.unmapped:
            name = next(iter(self.unmapped))
            raise GGUFError(f"{self.path}: unexpected tensor {name!r} (not part of a Qwen2 model)")
        for name, tensor in self.tensors.items():
            if name not in expected_shapes:
                raise GGUFError(f"{self.path}: unexpected tensor {tensor.gguf_name!r} ({name}) for a model with "
                                f"{self.config.num_hidden_layers} layers")
            if tuple(tensor.shape) != tuple(expected_shapes[name]):
                raise GGUFError(f"{self.path}: tensor {tensor.gguf_name!r} ({name}) has shape {list(tensor.shape)}, "
                                f"the config implies {list(expected_shapes[name])}")
            tensor._check_supported()
        missing = [name for name in expected_shapes if name not in self.tensors]
        if missing:
            raise GGUFError(f"{self.path}: missing tensor {missing[0]!r}"
                            + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))

    def state_dict(self, dtype: "torch.dtype | None" = None, device: "torch.device | str" = "cpu"
                   ) -> dict[str, "torch.Tensor"]:
        """Every tensor dequantized to `dtype` (default float32), keyed by Hugging Face name."""
        return {name: tensor.dequantize(dtype, device) for name, tensor in self.tensors.items()}


def load_gguf_model(path: str | Path, dtype: "torch.dtype | None" = None, device: "torch.device | str" = "cpu"
                    ) -> tuple[ModelConfig, "Qwen2ForCausalLM"]:
    """Build our Qwen2 model from a GGUF file: meta-device construction, every tensor dequantized to `dtype`
    (default float32) on `device` and assigned in place (no second copy of the weights)."""
    import torch

    from qwq.model.qwen2 import meta_model

    dtype = dtype or torch.float32
    checkpoint = GGUFCheckpoint.open(path)
    config = checkpoint.config
    model = meta_model(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    checkpoint.check_against(expected)
    state = {name: tensor.dequantize(dtype, device) for name, tensor in checkpoint.tensors.items()}
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb.reset(device)
    leftover = [name for name, p in model.named_parameters() if p.is_meta]
    if leftover:  # check_against makes this unreachable unless the model and the name map diverge
        raise GGUFError(f"{checkpoint.path}: tensor {leftover[0]!r} was not loaded")
    return config, model.eval()
