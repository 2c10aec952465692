"""Quantizers: float weights -> int8 / int4 codes and scales (the packing into stored tensors is in quant.py)."""

from __future__ import annotations

import torch

from qwq.utils.errors import UsageError


def quantize_int8(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8: (qweight int8 [N, K], scales fp32 [N])."""
    w = weight.float()
    scales = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
    q = torch.round(w / scales[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scales


def int4_codes_affine(weight: torch.Tensor, group_size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Min/max affine int4 per group of `group_size` inputs: (codes uint8 [N, K] 0..15, scales, zeros fp32 [N, K/G]).

    w ~ (q - 8) * scale + zero, with zero = min + 8 * scale: the group's min and max are representable exactly.
    """
    n, k = weight.shape
    if k % group_size:
        raise UsageError(f"int4 group size {group_size} does not divide the input width {k}")
    w = weight.float().reshape(n, k // group_size, group_size)
    lo, hi = w.amin(dim=-1), w.amax(dim=-1)
    scales = ((hi - lo) / 15.0).clamp_(min=1e-12)
    codes = (w - lo[..., None]).div_(scales[..., None]).round_().clamp_(0, 15).to(torch.uint8)
    return codes.reshape(n, k), scales, lo.add_(scales, alpha=8.0)


def int4_codes_search(weight: torch.Tensor, group_size: int, steps: int = 16
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Int4 per group with the scale searched for the least squared error (same output as int4_codes_affine).

    For each candidate inverse scale (a grid around 15 / (max - min), llama.cpp's make_qkx idea) the codes are
    rounded, then (scale, zero) are refitted by least squares to those codes; each group keeps its best candidate.
    Typically 30-40% less error than min/max, which matters when re-quantizing 5/6/8-bit GGUF blocks to 4 bits.
    """
    n, k = weight.shape
    if k % group_size:
        raise UsageError(f"int4 group size {group_size} does not divide the input width {k}")
    w = weight.float().reshape(n, k // group_size, group_size)
    codes, scales, zeros = int4_codes_affine(weight, group_size)
    best_codes = codes.view_as(w).float()
    best_err = ((best_codes - 8) * scales[..., None] + zeros[..., None] - w).square_().sum(-1)
    lo, hi = w.amin(dim=-1, keepdim=True), w.amax(dim=-1, keepdim=True)
    span = (hi - lo).clamp_(min=1e-12)
    count = float(group_size)
    for step in range(steps):
        levels = 15.0 - 1.0 + 2.0 * step / max(steps - 1, 1)  # 14 .. 16 levels across the span
        q = ((w - lo) * (levels / span)).round_().clamp_(0, 15)
        sum_q, sum_qq = q.sum(-1), q.square().sum(-1)
        sum_x, sum_qx = w.sum(-1), (q * w).sum(-1)
        det = count * sum_qq - sum_q * sum_q
        ok = det > 1e-12
        det = torch.where(ok, det, torch.ones_like(det))
        a = (count * sum_qx - sum_q * sum_x) / det  # least-squares fit w ~ a * q + b
        b = (sum_qq * sum_x - sum_q * sum_qx) / det
        err = (a[..., None] * q + b[..., None] - w).square_().sum(-1)
        better = ok & (err < best_err) & (a > 0)
        if better.any():
            best_err = torch.where(better, err, best_err)
            best_codes = torch.where(better[..., None], q, best_codes)
            scales = torch.where(better, a, scales)
            zeros = torch.where(better, b + 8.0 * a, zeros)
    return best_codes.to(torch.uint8).reshape(n, k), scales, zeros
