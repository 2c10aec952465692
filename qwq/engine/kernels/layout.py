"""The packed weight layouts wo_gemm.cpp reads, to and from qwq's stored format (exact both ways).

Blocks of 16 output rows (N padded up to a multiple of 16); within a block the bytes that one VNNI instruction
multiplies (16 outputs x 4 consecutive inputs) are contiguous:
  int8  stored qweight int8 [N, K], scales [N]  ->  codes uint8 [NB, K/4, 16, 4] (w + 128), scales fp32 [NB * 16]
  int4  codes uint8 [N, K] (0..15), scale_zeros bf16 [K/G, N, 2]
        ->  codes uint8 [NB, K/8, 16, 4] (low nibble input 8j + b, high nibble input 8j + 4 + b),
            scale_zeros bf16 [NB, K/G, 2, 16] (16 scales, then 16 zeros, per block and group)
  bf16  weight [N, K]  ->  bf16 [NB, K/2, 16, 2] (16 outputs x 2 consecutive inputs per vdpbf16ps), K even
Padding rows have zero weights and zero scales.
"""

from __future__ import annotations

import torch

BLOCK_N = 16


def padded_rows(rows: int) -> int:
    return -(-rows // BLOCK_N) * BLOCK_N


def _pad_rows(t: torch.Tensor, rows: int, dim: int = 0, value: int = 0) -> torch.Tensor:
    extra = rows - t.shape[dim]
    if extra == 0:
        return t
    shape = list(t.shape)
    shape[dim] = extra
    return torch.cat((t, torch.full(shape, value, dtype=t.dtype)), dim=dim)


def _blocks_of_quads(t: torch.Tensor) -> torch.Tensor:
    """[NB, 16, Q, 4] bytes -> a new contiguous [NB, Q, 16, 4] (moved as 4-byte words: ~4x faster than bytes)."""
    words = t.contiguous().view(torch.int32).squeeze(-1)  # [NB, 16, Q]
    out = words.new_empty(words.shape[0], words.shape[2], words.shape[1])  # always a copy: callers modify it
    out.copy_(words.transpose(1, 2))
    return out.unsqueeze(-1).view(torch.uint8)


def pack_int8(qweight: torch.Tensor, scales: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    n, k = qweight.shape
    rows = padded_rows(n)
    padded = _pad_rows(qweight.contiguous().view(torch.uint8), rows)
    codes = _blocks_of_quads(padded.view(rows // BLOCK_N, BLOCK_N, k // 4, 4))
    codes ^= 0x80  # w + 128 (two's complement); padding rows: w = 0
    return codes, _pad_rows(scales.float(), rows)


def unpack_int8(codes: torch.Tensor, out_features: int) -> torch.Tensor:
    """Inverse of pack_int8 for the weight: the stored int8 [N, K] (the stored scales are kept as they were)."""
    blocks, quads = codes.shape[:2]
    rows = codes.transpose(1, 2).reshape(blocks * BLOCK_N, quads * 4)[:out_features]
    return (rows ^ 0x80).view(torch.int8).contiguous()


def pack_int4(codes: torch.Tensor, scale_zeros: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """codes uint8 [N, K] in 0..15 and stored scale_zeros [K/G, N, 2] -> the packed pair."""
    n, k = codes.shape
    rows = padded_rows(n)
    halves = _pad_rows(codes, rows).view(rows // BLOCK_N, BLOCK_N, k // 8, 2, 4)
    packed = _blocks_of_quads(halves[:, :, :, 0] | (halves[:, :, :, 1] << 4))
    groups = scale_zeros.shape[0]
    sz = _pad_rows(scale_zeros, rows, dim=1).view(groups, rows // BLOCK_N, BLOCK_N, 2)
    return packed, sz.permute(1, 0, 3, 2).contiguous()


def unpack_int4(packed: torch.Tensor, scale_zeros: torch.Tensor, out_features: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Inverse of pack_int4: (codes uint8 [N, K], scale_zeros [K/G, N, 2])."""
    blocks, octets = packed.shape[:2]
    per_block = packed.transpose(1, 2)  # [NB, 16, K/8, 4]
    codes = torch.stack((per_block & 0x0F, per_block >> 4), dim=3).reshape(blocks * BLOCK_N, octets * 8)
    groups = scale_zeros.shape[1]
    sz = scale_zeros.permute(1, 0, 3, 2).reshape(groups, blocks * BLOCK_N, 2)
    return codes[:out_features].contiguous(), sz[:, :out_features].contiguous()


def pack_bf16(weight: torch.Tensor) -> torch.Tensor:
    """A float weight [N, K] (K even) -> bf16 [NB, K/2, 16, 2] for bf16_gemm.cpp (rounded to bf16 if it was not)."""
    n, k = weight.shape
    if k % 2:
        raise ValueError(f"pack_bf16: K must be even, got {k}")
    rows = padded_rows(n)
    padded = _pad_rows(weight.detach().to(torch.bfloat16), rows)
    return padded.view(rows // BLOCK_N, BLOCK_N, k // 2, 2).transpose(1, 2).contiguous()
