"""GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained Transformers"):
int4 rounding that compensates each column's error on the columns not yet quantized, using the layer's input
statistics H = X^T X from a little calibration text.

Rounding each weight to its nearest 4-bit level (RTN) ignores that errors in different input columns cancel or add
up depending on how correlated those inputs are. GPTQ quantizes one column at a time and spreads its error over the
remaining columns along H^-1 (through a Cholesky factor, in blocks of 128 columns), which keeps the layer's OUTPUT
close on real inputs. Layers are processed in order, each one calibrated on the outputs of the already-quantized
layers before it. Group parameters (scale, zero) are chosen when the first column of a group is reached, from the
error-updated weights, with the least-squares search of `int4_codes_search`.

Costs a few forward passes over the calibration text plus, per Linear, O(K^2 N) arithmetic: about a minute for the
0.5B model on two cores (the GGUF conversion cache keeps the result).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from qwq.engine.quant import (Int4Linear, Int8Linear, QuantSpec, int4_codes_search, pack_int4, quantize_int8,
                              scale_zeros_tensor)

BLOCK = 128
DAMP = 0.01


@torch.no_grad()
def gptq_int4(weight: torch.Tensor, hessian: torch.Tensor, group_size: int, search_steps: int = 8
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(codes uint8 [N, K], scales, zeros fp32 [N, K/G]) for W [N, K] given H [K, K] (sum of x x^T)."""
    w = weight.float().clone()
    n, k = w.shape
    h = hessian.float().clone()
    dead = torch.diagonal(h) == 0  # inputs that were always zero carry no information
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    h.diagonal().add_(DAMP * torch.diagonal(h).mean())
    try:
        upper = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    except torch.linalg.LinAlgError:  # numerically singular even after damping: fall back to plain rounding
        codes, scales, zeros = int4_codes_search(weight, group_size, search_steps)
        return codes, scales, zeros
    codes = torch.empty(n, k, dtype=torch.uint8)
    scales = torch.empty(n, k // group_size)
    zeros = torch.empty(n, k // group_size)
    for start in range(0, k, BLOCK):
        end = min(start + BLOCK, k)
        block = w[:, start:end].clone()
        errors = torch.zeros_like(block)
        hinv = upper[start:end, start:end]
        for i in range(end - start):
            column = start + i
            if column % group_size == 0:
                _, s, z = int4_codes_search(block[:, i:i + group_size], group_size, search_steps)
                g = column // group_size
                scales[:, g], zeros[:, g] = s[:, 0], z[:, 0]
                scale, zero = s[:, 0], z[:, 0]
            q = torch.clamp(torch.round((block[:, i] - zero) / scale) + 8, 0, 15)
            codes[:, column] = q.to(torch.uint8)
            error = (block[:, i] - ((q - 8) * scale + zero)) / hinv[i, i]
            block[:, i:] -= error[:, None] * hinv[i, i:][None, :]
            errors[:, i] = error
        w[:, end:] -= errors @ upper[start:end, end:]
    return codes, scales, zeros


class _InputStats:
    """Accumulates X^T X of a module's inputs (over every calibration token)."""

    def __init__(self, width: int) -> None:
        self.hessian = torch.zeros(width, width)
        self.tokens = 0

    def __call__(self, module: nn.Module, inputs: tuple) -> None:
        x = inputs[0].reshape(-1, inputs[0].shape[-1]).float()
        self.hessian.addmm_(x.t(), x)
        self.tokens += x.shape[0]


def _quantized_module(name: str, linear: nn.Linear, spec: QuantSpec, hessian: torch.Tensor | None,
                      compute_dtype: torch.dtype, search_steps: int) -> nn.Module:
    method = spec.method_for(name)
    bias = linear.bias is not None
    if method == "int8":
        module = Int8Linear(linear.in_features, linear.out_features, bias, compute_dtype)
        q, scales = quantize_int8(linear.weight)
        module.qweight, module.scales = q, scales.to(compute_dtype)
    else:
        module = Int4Linear(linear.in_features, linear.out_features, bias, spec.group_size, compute_dtype)
        if hessian is None:
            codes, scales, zeros = int4_codes_search(linear.weight, spec.group_size, search_steps)
        else:
            codes, scales, zeros = gptq_int4(linear.weight, hessian, spec.group_size, search_steps)
        module.qweight, module.scale_zeros = pack_int4(codes), scale_zeros_tensor(scales, zeros, compute_dtype)
    if bias:
        module.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
    return module


@torch.no_grad()
def gptq_quantize_model(model: nn.Module, spec: QuantSpec, calibration: Sequence[Sequence[int]],
                        compute_dtype: torch.dtype = torch.bfloat16, search_steps: int = 8,
                        progress: Callable[[str], None] | None = None) -> nn.Module:
    """Quantize a float Qwen2 model in place, layer by layer; int4 modules use GPTQ, int8 ones plain rounding."""
    inner = model.model
    hidden = [inner.embed_tokens(torch.tensor([list(ids)])).float() for ids in calibration]
    rotations = [inner.rotary_emb(torch.arange(len(ids))[None]) for ids in calibration]
    for layer_index, layer in enumerate(inner.layers):
        linears = {name: m for name, m in layer.named_modules() if isinstance(m, nn.Linear)}
        wanted = {name for name, m in linears.items()
                  if spec.method_for(f"model.layers.{layer_index}.{name}") == "int4"}
        stats, hooks = {}, []
        for name in wanted:
            stats[name] = _InputStats(linears[name].in_features)
            hooks.append(linears[name].register_forward_pre_hook(stats[name]))
        for h, (cos, sin) in zip(hidden, rotations):
            layer(h.to(layer.input_layernorm.weight.dtype), cos, sin, None)
        for hook in hooks:
            hook.remove()
        for name, linear in linears.items():
            full = f"model.layers.{layer_index}.{name}"
            if spec.method_for(full) == "none":
                continue
            parent_name, _, attr = name.rpartition(".")
            parent = layer.get_submodule(parent_name) if parent_name else layer
            hessian = stats[name].hessian if name in stats else None
            setattr(parent, attr, _quantized_module(full, linear, spec, hessian, compute_dtype, search_steps))
        hidden = [layer(h.to(layer.input_layernorm.weight.dtype), cos, sin, None).float()
                  for h, (cos, sin) in zip(hidden, rotations)]
        if progress is not None:
            progress(f"layer {layer_index}")
    head_method = spec.method_for("lm_head")
    if head_method != "none" and not model.config.tie_word_embeddings:
        head_stats = None
        if head_method == "int4":
            head_stats = _InputStats(model.lm_head.in_features)
            for h in hidden:
                head_stats(model.lm_head, (inner.norm(h),))
        model.lm_head = _quantized_module("lm_head", model.lm_head, spec,
                                          None if head_stats is None else head_stats.hessian, compute_dtype,
                                          search_steps)
    return model
