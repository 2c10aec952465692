"""Run a GGUF checkpoint on the int4/int8 kernels without inflating the model to floats first.

Each Linear weight is converted on its own, a slice of rows at a time, straight from the file mapping:
  - Q4_K -> int4 with groups of 32: exact. A Q4_K sub-block of 32 values is `scale * code - min` with 4-bit codes,
    which is our int4 affine format with zero = 8 * scale - min (only the bf16 rounding of scale/zero differs).
  - every other type (Q5_0, Q6_K, Q8_0, floats...) -> decoded to fp32 for those rows, then quantized to the
    target format: int4 with the least-squares scale search (`int4_codes_search`), or int8 per channel.
Embeddings are stored as int8 rows, norms and biases decoded to the model dtype. Peak extra memory is one slice of
one tensor.

`--quant int4` on a GGUF uses `gguf_int4_spec`: int4 for the bulk of the MLPs, int8 where a small model is most
sensitive. Teacher-forced top-1 agreement with the fp32-decoded Qwen2.5-Coder-0.5B Q4_K_M over 400 positions
(benchmarks/quant_accuracy.py; KL in nats):
    all int4 (min/max)                          0.890   KL 0.054
    all int4 (least-squares search)             0.915   KL 0.041
    + LM head int8                              0.928   KL 0.034
    + attention int8                            0.943   KL 0.016
    + MLPs of the first and last 2 layers int8  0.953   KL 0.013   <- gguf_int4_spec
    all int8                                    0.985   KL 0.001
(GPTQ with 1k calibration tokens did not beat the search here: 0.920 with the LM head in int8.) The GGUF is mostly
Q5_0; four bits cannot hold five, so the sensitive parts keep eight, much as llama.cpp's own Q4_K_M mix does.
"""

from __future__ import annotations

from pathlib import Path

import torch
from gguf.constants import GGMLQuantizationType as GGMLType

from qwq.config import ModelConfig
from qwq.engine.quant import (Int4Linear, Int8Embedding, Int8Linear, QuantSpec, int4_codes_affine, int4_codes_search,
                              int4_is_blocked,
                              iter_linears, make_quant_linear, pack_int4, quantize_int8)
from qwq.utils.errors import GGUFError

# Rows decoded at once (a multiple of 64): 8192 rows of 896 floats is ~29 MB of fp32 (the LM head has 151,936 rows).
_ROWS_PER_SLICE = 8192


def gguf_int4_spec(config: ModelConfig, group_size: int = 32) -> QuantSpec:
    """The int4 mix for GGUF sources (see the module docstring): int8 for the LM head, the attention projections
    and the MLPs of the first and last two layers; int4 (groups of `group_size`) elsewhere."""
    last = config.num_hidden_layers - 1
    edges = sorted({0, min(1, last), max(last - 1, 0), last})
    modules = {"lm_head": "int8", "*.self_attn.*": "int8"}
    modules.update({f"model.layers.{i}.mlp.*": "int8" for i in edges})
    return QuantSpec("int4", group_size, modules)


def _row_slices(rows: int, step: int = _ROWS_PER_SLICE):
    for start in range(0, rows, step):
        yield start, min(rows, start + step)


def _decode_rows(tensor, start: int, end: int) -> torch.Tensor:
    from qwq.model.gguf_quants import dequantize_blocks

    return dequantize_blocks(tensor.raw[start:end], tensor.ggml_type, (end - start, tensor.shape[-1]))


def _q4k_rows_as_codes(tensor, start: int, end: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Exact Q4_K rows as int4 (codes uint8 [rows, K], scales, zeros fp32 [rows, K/32])."""
    from qwq.model.gguf_quants import unpack_blocks

    rows, width = end - start, tensor.shape[-1]
    unpacked = unpack_blocks(tensor.raw[start:end], tensor.ggml_type)
    codes = unpacked.codes.reshape(rows, width).to(torch.uint8)
    scales = unpacked.scale.reshape(rows, width // 32)
    zeros = 8.0 * scales - unpacked.minimum.reshape(rows, width // 32)
    return codes, scales, zeros


@torch.no_grad()
def fill_int4_from_gguf(module: Int4Linear, tensor, search_steps: int = 8) -> str:
    """Fill an Int4Linear from a GGUF weight; returns how ('exact' or 'requantized')."""
    rows, width = tensor.shape
    exact = tensor.ggml_type == GGMLType.Q4_K and module.group_size == 32

    def quantize_codes(rows: torch.Tensor, group_size: int):
        if search_steps > 0:
            return int4_codes_search(rows, group_size, search_steps)
        return int4_codes_affine(rows, group_size)

    qweight = torch.empty(rows, width // 2, dtype=torch.uint8)
    scale_zeros = torch.empty(width // module.group_size, rows, 2, dtype=module.scale_zeros.dtype)
    step = _ROWS_PER_SLICE if int4_is_blocked(rows) else rows  # blocked packing needs whole 64-row blocks
    for start, end in _row_slices(rows, step):
        if exact:
            codes, scales, zeros = _q4k_rows_as_codes(tensor, start, end)
        else:
            codes, scales, zeros = quantize_codes(_decode_rows(tensor, start, end), module.group_size)
        qweight[start:end] = pack_int4(codes)
        scale_zeros[:, start:end, 0] = scales.t()
        scale_zeros[:, start:end, 1] = zeros.t()
    module.qweight, module.scale_zeros = qweight, scale_zeros
    return "exact" if exact else "requantized"


@torch.no_grad()
def fill_int8_from_gguf(module: Int8Linear, tensor) -> str:
    rows, width = tensor.shape
    qweight = torch.empty(rows, width, dtype=torch.int8)
    scales = torch.empty(rows, dtype=torch.float32)
    for start, end in _row_slices(rows):
        qweight[start:end], scales[start:end] = quantize_int8(_decode_rows(tensor, start, end))
    module.qweight, module.scales = qweight, scales.to(module.scales.dtype)
    return "requantized"


def load_gguf_quantized(path: str | Path, spec: QuantSpec, dtype: torch.dtype = torch.bfloat16,
                        compute_dtype: torch.dtype = torch.bfloat16, report: dict | None = None,
                        search_steps: int = 8) -> tuple[ModelConfig, torch.nn.Module]:
    """Build a Qwen2 model from a GGUF file with its Linear layers quantized per `spec` (CPU).

    `dtype` is the dtype of everything else (embedding, norms, biases, activations); `compute_dtype` the dtype the
    quantized matmuls run in (bf16: the fast CPU kernels). `report`, when given, receives per-module conversion
    notes ({module name: "Q4_K->int4 exact" ...}).
    """
    from qwq.model.gguf import GGUFCheckpoint
    from qwq.model.qwen2 import meta_model

    checkpoint = GGUFCheckpoint.open(path)
    config = checkpoint.config
    model = meta_model(config)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    checkpoint.check_against(expected)

    handled: set[str] = set()
    for name, parent, attr, linear in list(iter_linears(model)):
        method = spec.method_for(name)
        weight_name = f"{name}.weight"
        if method == "none" or weight_name not in checkpoint.tensors:  # a tied head stays with the embedding
            continue
        tensor = checkpoint.tensors[weight_name]
        module = make_quant_linear(method, linear.in_features, linear.out_features, linear.bias is not None,
                                   spec.group_size, compute_dtype)
        if method == "int4":
            how = fill_int4_from_gguf(module, tensor, search_steps)
        else:
            how = fill_int8_from_gguf(module, tensor)
        handled.add(weight_name)
        if linear.bias is not None:
            bias_name = f"{name}.bias"
            module.bias = torch.nn.Parameter(checkpoint.tensors[bias_name].dequantize(dtype), requires_grad=False)
            handled.add(bias_name)
        setattr(parent, attr, module)
        if report is not None:
            report[name] = f"{tensor.type_name}->{method} {how}"

    embed_name = "model.embed_tokens.weight"
    if spec.embedding == "int8" and not config.tie_word_embeddings:
        tensor = checkpoint.tensors[embed_name]
        embedding = Int8Embedding(config.vocab_size, config.hidden_size, dtype)
        qweight = torch.empty(tensor.shape, dtype=torch.int8)
        scales = torch.empty(tensor.shape[0], dtype=torch.float32)
        for start, end in _row_slices(tensor.shape[0]):
            qweight[start:end], scales[start:end] = quantize_int8(_decode_rows(tensor, start, end))
        embedding.qweight, embedding.scales = qweight, scales.to(dtype)
        model.model.embed_tokens = embedding
        handled.add(embed_name)
        if report is not None:
            report["model.embed_tokens"] = f"{tensor.type_name}->int8 rows"
    rest = {name: tensor.dequantize(dtype) for name, tensor in checkpoint.tensors.items() if name not in handled}
    model.load_state_dict(rest, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb.reset("cpu")
    leftover = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise GGUFError(f"{checkpoint.path}: tensor {leftover[0]!r} was not loaded")
    return config, model.eval()
