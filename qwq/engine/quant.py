"""Weight-only int8 / int4 quantization of the model's Linear layers.

Formats (what a quantized checkpoint stores for a Linear named `<m>`; the spec lives in quantization.json):
  int8  `<m>.qweight` int8 [N, K], `<m>.scales` [N]                   w[n, k] = qweight[n, k] * scales[n]
  int4  `<m>.qweight` uint8 [N, K/2] (4-bit codes q in 0..15), `<m>.scale_zeros` [K/G, N, 2] (scale, zero) per
        group of G inputs:                                           w[n, k] = (q[n, k] - 8) * scale + zero
        Code layout: when N is a multiple of 64 ("blocked", the layout PyTorch's CPU int4 kernel reads), rows go in
        blocks of 64 and, for block b and input k, 32 consecutive bytes hold byte j = q[64b + j, k] |
        q[64b + 32 + j, k] << 4. Otherwise ("plain") byte (n, i) = q[n, 2i] | q[n, 2i + 1] << 4.
  `<m>.bias` (if any) stays in floating point.

Loading a quantized checkpoint on CPU is a memory map with no conversion. On CPU the modules run qwq's own kernels
(qwq.engine.kernels: two-term int8 activations per group of 32 x int8/int4 weights with AVX-512 VNNI; each weight
byte read once per call for up to 64 rows; a row's result independent of the batch; used for every row count,
prefill included). On first use a module re-packs
its buffers in place into the kernels' layout (same bytes, other order); state_dict() and dequantize() still give
the format above, so saving round-trips exactly. Without those kernels (QWQ_KERNELS=0, no AVX-512 VNNI, build
failure) they call `aten._weight_int8pack_mm` / `aten._weight_int4pack_mm_for_cpu`, fast only with bf16 activations
(DESIGN §6): each module casts its input to its compute dtype (the dtype of its scales, bf16 by default) and the
result back, and very large int8 weights (an LM head) use `int8_two_term_mm`. Modules with fp32 scales always take
the PyTorch path (fp32 activations: the exact one). Other devices dequantize per call (correct, slow).
"""

from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from qwq.engine.kernels import kernel_ops
from qwq.engine.quant_codes import int4_codes_affine, int4_codes_search, quantize_int8  # noqa: F401 (re-exported)
from qwq.engine.kernels import layout as kernel_layout
from qwq.utils.errors import CheckpointError, UsageError

METHODS = ("int8", "int4", "w8a8")  # w8a8: int8 weights and per-token int8 activations (quant_w8a8)
GROUP_SIZES = (32, 64, 128, 256)
SPEC_FILE = "quantization.json"
SPEC_FORMAT = "qwq-weight-only"
# The CPU int4 kernel reads output rows in blocks of 64 (see the layout above).
INT4_BLOCK_N = 64
_KERNEL_ALIGNMENT = 64
# PyTorch path only: from this many input rows on (long prefill chunks) dequantizing the weight to bf16 once and
# running a dense matmul beats PyTorch's weight-only kernels (measured: 2x faster at 512 rows, even at 128).
DENSE_FROM_ROWS = 256
# Int8 weights from this size on (the 0.5B model's LM head, 136M) run through `int8_two_term_mm` instead of the
# weight-only kernel. Chosen per module, never per call, so a row's result does not depend on the batch size.
# Measured on the 0.5B LM head, one thread: 1 row 18.9 vs 19.8 ms, 16 rows 42 vs 101 ms; on small layers (1-10M)
# the extra elementwise ops make one row ~0.1 ms slower per call, which a single stream would pay 56 times a step.
TWO_TERM_FROM_WEIGHTS = 1 << 24
# Activation terms in qwq's kernels (see wo_gemm.cpp): 2 = int8 codes + the residual (finer than bf16). One term
# (llama.cpp's Q8 activations, half the VNNI work) costs top-1 agreement on the real 0.5B model: int8 0.992 -> 0.982
# (< 0.99), the int4 mix 0.953 -> 0.948 (< 0.95).
INT8_ACTIVATION_TERMS = 2
INT4_ACTIVATION_TERMS = 2


# ---- spec ---------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QuantSpec:
    """Which Linear layers are quantized, and how. `modules` overrides the default per module name or glob
    pattern (e.g. {"lm_head": "int8", "*.mlp.down_proj": "int8"}); "none" keeps a module in floating point.
    `embedding` "int8" stores the token embedding as int8 rows with one scale each (a lookup reads one row, so
    this halves its memory at no speed cost); a tied embedding stays float (the LM head multiplies by it)."""

    method: str = "int4"
    group_size: int = 128
    modules: dict = field(default_factory=dict)
    embedding: str = "int8"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise UsageError(f"quantization method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.group_size not in GROUP_SIZES:
            raise UsageError(f"int4 group size must be one of {GROUP_SIZES}, got {self.group_size!r}")
        if self.embedding not in ("int8", "none"):
            raise UsageError(f"embedding quantization must be int8 or none, got {self.embedding!r}")
        for name, method in self.modules.items():
            if method not in METHODS + ("none",):
                raise UsageError(f"quantization of module {name!r} must be int8, int4, w8a8 or none, got {method!r}")

    def method_for(self, module_name: str) -> str:
        """The module's method: an exact name in `modules`, else the first matching glob pattern, else `method`."""
        if module_name in self.modules:
            return self.modules[module_name]
        for pattern, method in self.modules.items():
            if fnmatch.fnmatchcase(module_name, pattern):
                return method
        return self.method

    def to_dict(self) -> dict:
        return {"format": SPEC_FORMAT, "version": 1, "method": self.method, "group_size": self.group_size,
                "modules": dict(self.modules), "embedding": self.embedding}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: dict, source: str = "quantization spec") -> "QuantSpec":
        if not isinstance(data, dict) or data.get("format") != SPEC_FORMAT:
            raise CheckpointError(f"{source}: not a qwq weight-only quantization spec (format != {SPEC_FORMAT!r})")
        if data.get("version") != 1:
            raise CheckpointError(f"{source}: unsupported quantization spec version {data.get('version')!r}")
        try:
            return cls(method=data["method"], group_size=int(data.get("group_size", 128)),
                       modules=dict(data.get("modules") or {}), embedding=data.get("embedding", "none"))
        except (KeyError, TypeError, ValueError, UsageError) as exc:
            raise CheckpointError(f"{source}: invalid quantization spec ({exc})") from None


# ---- quantizers (float weight -> stored tensors; codes in quant_codes, re-exported here) --------------------------
def int4_is_blocked(out_features: int) -> bool:
    return out_features % INT4_BLOCK_N == 0


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """uint8 codes [N, K] (0..15) -> stored bytes [N, K/2] in the layout for N (blocked or plain)."""
    n, k = codes.shape
    if not int4_is_blocked(n):
        return codes[:, 0::2] | (codes[:, 1::2] << 4)
    halves = codes.view(n // INT4_BLOCK_N, 2, INT4_BLOCK_N // 2, k)  # [block, half, j, k]
    blocked = halves[:, 0] | (halves[:, 1] << 4)  # [block, j, k]
    return blocked.transpose(1, 2).contiguous().view(n, k // 2)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of pack_int4: stored bytes [N, K/2] -> uint8 codes [N, K]."""
    n, half_k = packed.shape
    if not int4_is_blocked(n):
        return torch.stack((packed & 0x0F, packed >> 4), dim=-1).view(n, half_k * 2)
    blocked = packed.view(n // INT4_BLOCK_N, half_k * 2, INT4_BLOCK_N // 2).transpose(1, 2)  # [block, j, k]
    return torch.stack((blocked & 0x0F, blocked >> 4), dim=1).reshape(n, half_k * 2)


def scale_zeros_tensor(scales: torch.Tensor, zeros: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """[N, K/G] scales and zeros -> the stored [K/G, N, 2] tensor."""
    return torch.stack((scales, zeros), dim=-1).transpose(0, 1).contiguous().to(dtype)


def quantize_int4(weight: torch.Tensor, group_size: int, dtype: torch.dtype = torch.bfloat16
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(qweight uint8 [N, K/2], scale_zeros [K/G, N, 2]) in the stored int4 format."""
    codes, scales, zeros = int4_codes_affine(weight, group_size)
    return pack_int4(codes), scale_zeros_tensor(scales, zeros, dtype)


def dequantize_int4(qweight: torch.Tensor, scale_zeros: torch.Tensor, dtype: torch.dtype = torch.float32
                    ) -> torch.Tensor:
    n = qweight.shape[0]
    groups = scale_zeros.shape[0]
    codes = unpack_int4(qweight).to(dtype).view(n, groups, -1)
    scales = scale_zeros[..., 0].t().to(dtype)[..., None]
    zeros = scale_zeros[..., 1].t().to(dtype)[..., None]
    return ((codes - 8) * scales + zeros).view(n, -1)


# ---- kernels -------------------------------------------------------------------------------------------------------
def int8_two_term_mm(x: torch.Tensor, qweight: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x [M, K] float times the int8 weight [N, K] (per-row `scales` [N]) with int8 x int8 -> int32 products.

    Each activation row is split into two int8 terms, x ~ s1 * q1 + s2 * q2: q1 the row quantized by its absmax,
    q2 the remainder (|r| <= s1 / 2) quantized with s2 = s1 / 254. The error left is ~1/64,000 of the row's absmax,
    below the bf16 rounding the weight-only kernel applies to activations, so this is no less accurate; the 2M rows
    go through ONE `torch._int_mm` (VNNI dot products on x86), which reads the weight once for all rows. PyTorch's
    weight-only kernel instead decodes the weight again for every row: at 16 rows it costs ~5.5x one row, this
    ~2x. Integer accumulation is exact and the scales are per row, so a row's result does not depend on the others
    in the batch. Returns fp32 [M, N].
    """
    x = x.float()
    s1 = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-20) / 127.0
    q1 = torch.round(x / s1)
    s2 = s1 / 254.0
    q2 = torch.round((x - q1 * s1) / s2).clamp_(-127, 127)
    acc = torch._int_mm(torch.cat((q1, q2)).to(torch.int8), qweight.t())
    rows = x.shape[0]
    return torch.addcmul(acc[:rows] * s1, acc[rows:], s2) * scales.float()


# ---- modules -------------------------------------------------------------------------------------------------------
class _QuantLinear(nn.Module):
    in_features: int
    out_features: int
    _packed = False  # True once the buffers hold the qwq kernels' layout (packed in place on first use)

    def _kernel(self):
        """The qwq kernel ops with this module's buffers packed for them, or None (use PyTorch's kernels)."""
        ops = kernel_ops() if self._kernel_eligible() else None
        if ops is None:
            self.to_stored_layout()
        elif not self._packed:
            self._pack()
            self._packed = True
        return ops

    def to_stored_layout(self) -> None:
        """Put the buffers back in the stored format (fusing or loading into a module needs it)."""
        if self._packed:
            for name, tensor in self._stored_buffers().items():
                setattr(self, name, tensor)
            self._packed = False

    def _save_to_state_dict(self, destination, prefix, keep_vars) -> None:
        super()._save_to_state_dict(destination, prefix, keep_vars)
        if self._packed:
            destination.update({prefix + name: t for name, t in self._stored_buffers().items()})

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:
        self.to_stored_layout()
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"

    def _add_bias(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.bias is None else y + self.bias.to(y.dtype)

    def _aligned_qweight(self) -> torch.Tensor:
        """The packed weight at a 64-byte aligned address: the CPU kernels use aligned vector loads and crash on
        less (a weight memory-mapped from a safetensors file is only 8-byte aligned). Copied once if needed."""
        if self.qweight.data_ptr() % _KERNEL_ALIGNMENT:
            self.qweight = self.qweight.clone(memory_format=torch.contiguous_format)
        return self.qweight

    def _make_bias(self, bias: bool, device) -> None:
        self.bias = nn.Parameter(torch.empty(self.out_features, device=device), requires_grad=False) if bias else None


class Int8Linear(_QuantLinear):
    def __init__(self, in_features: int, out_features: int, bias: bool = False,
                 compute_dtype: torch.dtype = torch.bfloat16, device=None) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.register_buffer("qweight", torch.empty(out_features, in_features, dtype=torch.int8, device=device))
        self.register_buffer("scales", torch.empty(out_features, dtype=compute_dtype, device=device))
        self._make_bias(bias, device)

    @classmethod
    def from_linear(cls, linear: nn.Linear, compute_dtype: torch.dtype = torch.bfloat16) -> "Int8Linear":
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, compute_dtype,
                     device=linear.weight.device)
        q, scales = quantize_int8(linear.weight.detach())
        module.qweight, module.scales = q, scales.to(compute_dtype)
        if linear.bias is not None:
            module.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return module

    def _kernel_eligible(self) -> bool:
        return self.scales.dtype == torch.bfloat16 and self.in_features % 32 == 0 and self.qweight.device.type == "cpu"

    def _pack(self) -> None:
        self.qweight, self._kernel_scales = kernel_layout.pack_int8(self.qweight, self.scales)

    def _stored_buffers(self) -> dict:
        return {"qweight": kernel_layout.unpack_int8(self.qweight, self.out_features)}

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        qweight = self._stored_buffers()["qweight"] if self._packed else self.qweight
        return qweight.to(dtype) * self.scales.to(dtype)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.device.type == "cpu":
            flat = x.reshape(-1, self.in_features)
            ops = self._kernel()
            if ops is not None:
                y = ops.int8_gemm(flat, self.qweight, self._kernel_scales, self.out_features, INT8_ACTIVATION_TERMS)
            elif flat.shape[0] >= DENSE_FROM_ROWS:
                flat = flat.to(self.scales.dtype)
                y = F.linear(flat, self.dequantize(flat.dtype))
            elif self.scales.dtype == torch.bfloat16 and self.qweight.numel() >= TWO_TERM_FROM_WEIGHTS:
                y = int8_two_term_mm(flat, self.qweight, self.scales)
            else:  # fp32 compute: the weight-only kernel in fp32
                y = torch.ops.aten._weight_int8pack_mm(flat.to(self.scales.dtype), self._aligned_qweight(),
                                                       self.scales)
            y = y.view(*x.shape[:-1], self.out_features).to(x.dtype)
        else:
            y = F.linear(x, self.dequantize(x.dtype))
        return self._add_bias(y)


class Int4Linear(_QuantLinear):
    def __init__(self, in_features: int, out_features: int, bias: bool = False, group_size: int = 128,
                 compute_dtype: torch.dtype = torch.bfloat16, device=None) -> None:
        super().__init__()
        if group_size not in GROUP_SIZES:
            raise UsageError(f"int4 group size must be one of {GROUP_SIZES}, got {group_size!r}")
        if in_features % group_size:
            raise UsageError(f"int4 group size {group_size} does not divide the input width {in_features}")
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        groups = in_features // group_size
        self.register_buffer("qweight", torch.empty(out_features, in_features // 2, dtype=torch.uint8, device=device))
        self.register_buffer("scale_zeros", torch.empty(groups, out_features, 2, dtype=compute_dtype, device=device))
        self._make_bias(bias, device)

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = 128,
                    compute_dtype: torch.dtype = torch.bfloat16) -> "Int4Linear":
        module = cls(linear.in_features, linear.out_features, linear.bias is not None, group_size, compute_dtype,
                     device=linear.weight.device)
        module.qweight, module.scale_zeros = quantize_int4(linear.weight.detach(), group_size, compute_dtype)
        if linear.bias is not None:
            module.bias = nn.Parameter(linear.bias.detach().clone(), requires_grad=False)
        return module

    def _kernel_eligible(self) -> bool:
        return self.scale_zeros.dtype == torch.bfloat16 and self.qweight.device.type == "cpu"

    def _pack(self) -> None:
        self.qweight, self.scale_zeros = kernel_layout.pack_int4(unpack_int4(self.qweight), self.scale_zeros)

    def _stored_buffers(self) -> dict:
        codes, scale_zeros = kernel_layout.unpack_int4(self.qweight, self.scale_zeros, self.out_features)
        return {"qweight": pack_int4(codes), "scale_zeros": scale_zeros}

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        stored = self._stored_buffers() if self._packed else {"qweight": self.qweight, "scale_zeros": self.scale_zeros}
        return dequantize_int4(stored["qweight"], stored["scale_zeros"], dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops = self._kernel() if x.device.type == "cpu" else None
        if ops is not None:
            y = ops.int4_gemm(x.reshape(-1, self.in_features), self.qweight, self.scale_zeros, self.out_features,
                              self.group_size, INT4_ACTIVATION_TERMS).view(*x.shape[:-1], self.out_features).to(x.dtype)
        elif x.device.type == "cpu" and int4_is_blocked(self.out_features):
            flat = x.reshape(-1, self.in_features).to(self.scale_zeros.dtype)
            if flat.shape[0] >= DENSE_FROM_ROWS:
                y = F.linear(flat, self.dequantize(flat.dtype))
            else:
                y = torch.ops.aten._weight_int4pack_mm_for_cpu(flat, self._aligned_qweight(), self.group_size,
                                                               self.scale_zeros)
            y = y.view(*x.shape[:-1], self.out_features).to(x.dtype)
        else:
            y = F.linear(x, self.dequantize(x.dtype))
        return self._add_bias(y)


class Int8Embedding(nn.Module):
    """Token embedding stored as int8 rows with one scale per row; a lookup dequantizes only the rows it reads.
    Buffers: `qweight` int8 [V, H], `scales` [V] (their dtype is the output dtype)."""

    def __init__(self, num_embeddings: int, embedding_dim: int, dtype: torch.dtype = torch.float32,
                 device=None) -> None:
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.register_buffer("qweight", torch.empty(num_embeddings, embedding_dim, dtype=torch.int8, device=device))
        self.register_buffer("scales", torch.empty(num_embeddings, dtype=dtype, device=device))

    @classmethod
    def from_embedding(cls, embedding: nn.Embedding) -> "Int8Embedding":
        module = cls(embedding.num_embeddings, embedding.embedding_dim, embedding.weight.dtype,
                     device=embedding.weight.device)
        q, scales = quantize_int8(embedding.weight.detach())
        module.qweight, module.scales = q, scales.to(embedding.weight.dtype)
        return module

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}"

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.qweight.to(dtype) * self.scales.to(dtype)[:, None]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.qweight[ids].to(self.scales.dtype) * self.scales[ids][..., None]


QuantLinear = (Int8Linear, Int4Linear)


# ---- whole-model helpers ---------------------------------------------------------------------------------------------
def iter_linears(model: nn.Module) -> Iterator[tuple[str, nn.Module, str, nn.Linear]]:
    """(full name, parent module, attribute name, Linear) for every nn.Linear in the model."""
    for parent_name, parent in model.named_modules():
        for attr, child in list(parent.named_children()):
            if isinstance(child, nn.Linear):
                yield (f"{parent_name}.{attr}" if parent_name else attr), parent, attr, child


def make_quant_linear(method: str, in_features: int, out_features: int, bias: bool, group_size: int,
                      compute_dtype: torch.dtype, device=None) -> nn.Module:
    if method == "w8a8":
        from qwq.engine.quant_w8a8 import W8A8Linear

        return W8A8Linear(in_features, out_features, bias, device=device)
    if method == "int8":
        return Int8Linear(in_features, out_features, bias, compute_dtype, device=device)
    return Int4Linear(in_features, out_features, bias, group_size, compute_dtype, device=device)


def quantize_model(model: nn.Module, spec: QuantSpec, compute_dtype: torch.dtype = torch.bfloat16) -> nn.Module:
    """Swap every nn.Linear the spec covers for its quantized version, in place, one layer at a time (the float
    weight of a layer is released as soon as it is replaced). A tied LM head stays tied to the embedding (float)."""
    tied = getattr(getattr(model, "config", None), "tie_word_embeddings", False)
    with torch.no_grad():
        inner = getattr(model, "model", None)
        if spec.embedding == "int8" and not tied and isinstance(getattr(inner, "embed_tokens", None), nn.Embedding):
            inner.embed_tokens = Int8Embedding.from_embedding(inner.embed_tokens)
        for name, parent, attr, linear in iter_linears(model):
            method = spec.method_for(name)
            if method == "none" or (tied and name == "lm_head"):
                continue
            if method == "int8":
                new = Int8Linear.from_linear(linear, compute_dtype)
            elif method == "w8a8":  # without calibration statistics: no smoothing (see quant_w8a8 for that)
                from qwq.engine.quant_w8a8 import W8A8Linear

                new = W8A8Linear.from_linear(linear)
            else:
                new = Int4Linear.from_linear(linear, spec.group_size, compute_dtype)
            setattr(parent, attr, new)
    return model


def quantized_bytes(model: nn.Module) -> int:
    """Bytes of the model's parameters and persistent buffers at their stored sizes (quantized modules at their
    packed size). Works on the meta device, so a 32B model's footprint can be counted without its weights."""
    total = 0
    seen: set[int] = set()
    for module in model.modules():
        persistent = [b for name, b in module.named_buffers(recurse=False)
                      if name not in module._non_persistent_buffers_set]
        for t in list(module.parameters(recurse=False)) + persistent:
            if id(t) in seen:
                continue
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return total
