"""Run a GGUF checkpoint on the int4/int8 kernels without inflating the model to floats first.

Each Linear weight is converted on its own, a slice of rows at a time, straight from the file mapping:
  - Q4_K -> int4 with groups of 32: exact. A Q4_K sub-block of 32 values is `scale * code - min` with 4-bit codes,
    which is our int4 affine format with zero = 8 * scale - min (only the bf16 rounding of scale/zero differs).
  - every other type (Q5_0, Q6_K, Q8_0, floats...) -> decoded to fp32 for those rows, then quantized to the
    target format (int4 min/max per group, or int8 per channel). Measured on Qwen2.5-Coder-0.5B Q4_K_M: see
    benchmarks/quant_accuracy.py.
Embeddings, norms and biases are decoded to the model dtype. Peak extra memory is one slice of one tensor.
"""

from __future__ import annotations

from pathlib import Path

import torch
from gguf.constants import GGMLQuantizationType as GGMLType

from qwq.config import ModelConfig
from qwq.engine.quant import (Int4Linear, Int8Linear, QuantSpec, int4_codes_affine, int4_codes_search,
                              int4_is_blocked,
                              iter_linears, make_quant_linear, pack_int4, quantize_int8)
from qwq.utils.errors import GGUFError

# Rows decoded at once (a multiple of 64): 8192 rows of 896 floats is ~29 MB of fp32 (the LM head has 151,936 rows).
_ROWS_PER_SLICE = 8192


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
    from qwq.model.qwen2 import Qwen2ForCausalLM

    checkpoint = GGUFCheckpoint.open(path)
    config = checkpoint.config
    with torch.device("meta"):
        model = Qwen2ForCausalLM(config)
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

    rest = {name: tensor.dequantize(dtype) for name, tensor in checkpoint.tensors.items() if name not in handled}
    model.load_state_dict(rest, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb.reset("cpu")
    leftover = [name for name, t in list(model.named_parameters()) + list(model.named_buffers()) if t.is_meta]
    if leftover:
        raise GGUFError(f"{checkpoint.path}: tensor {leftover[0]!r} was not loaded")
    return config, model.eval()
