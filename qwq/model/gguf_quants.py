"""Vectorised torch decoding of the ggml block formats used by Qwen GGUFs, bit-exact with `gguf.quants`.

Every supported block format decodes to the same shape of data, `Unpacked`: small integer codes in sub-blocks with
one float scale (and, for the K formats with a minimum, one offset) per sub-block, so that

    value = scale * code - minimum        (minimum absent: value = scale * code)

The engine repacks these codes and scales into its own int4/int8 layouts; `dequantize_blocks` turns them into
floats. The arithmetic follows the order of `gguf.quants` (float16 scales widened to float32, products in float32),
which makes the results identical to the reference, bit for bit (the tests check this).

Block layouts (bytes, little-endian), after ggml-common.h:
  Q8_0  32 values:  f16 d | 32 x i8 q                                     value = d*q
  Q5_0  32 values:  f16 d | u32 high bits | 16 B low nibbles             value = d*(q - 16), q in 0..31
  Q4_K 256 values:  f16 d | f16 dmin | 12 B packed 6-bit (scale, min) x 8 | 128 B nibbles
                    value = d*sc_j*q - dmin*m_j for sub-block j of 32
  Q5_K 256 values:  as Q4_K plus 32 B of fifth bits before the nibbles
  Q6_K 256 values:  128 B low nibbles | 64 B high 2-bit pairs | 16 x i8 scale | f16 d
                    value = d*sc_j*(q - 32) for sub-block j of 16
Float formats (F32, F16, BF16) are plain reinterpretations; other ggml types (Q4_0, Q4_1, Q5_1, Q2_K, Q3_K) are
decoded through `gguf.quants` (numpy), anything else is rejected by the caller with the tensor's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType as T

from qwq.model.gguf_file import FLOAT_TYPES, NUMPY_BLOCK_TYPES, TORCH_BLOCK_TYPES

QK_K = 256
# Values decoded per step: the temporaries (a few bytes per value) stay in cache, each op is still large.
_VALUES_PER_CHUNK = 1 << 20


@dataclass
class Unpacked:
    """Decoded blocks: value[b, j, i] = scale[b, j] * codes[b, j, i] - minimum[b, j] (minimum may be None)."""

    codes: torch.Tensor  # int8 [n_blocks, n_sub, sub_size]
    scale: torch.Tensor  # float32 [n_blocks, n_sub]
    minimum: torch.Tensor | None  # float32 [n_blocks, n_sub] or None

    def values(self, out: torch.Tensor | None = None) -> torch.Tensor:
        """float32 [n_blocks, block_size]; written into `out` (float32, that many values) when given.

        The codes are widened straight into the result and scaled in place: a fresh float temporary per chunk
        costs more in page faults than the arithmetic (products are commutative, so this stays bit-exact)."""
        n_blocks = self.codes.shape[0]
        if out is None:
            out = torch.empty(self.codes.shape, dtype=torch.float32, device=self.codes.device)
        target = out.view(self.codes.shape)
        target.copy_(self.codes)
        target.mul_(self.scale.unsqueeze(-1))
        if self.minimum is not None:
            target.sub_(self.minimum.unsqueeze(-1))
        return target.view(n_blocks, -1)


def _f16(raw: torch.Tensor, start: int) -> torch.Tensor:
    """A float16 field at byte `start` of each block, widened to float32, shape [n_blocks]."""
    return raw[:, start:start + 2].contiguous().view(torch.float16).to(torch.float32).reshape(-1)


def _nibbles(packed: torch.Tensor) -> torch.Tensor:
    """[n, k, m] bytes -> [n, 2k, m] codes: in each group of m bytes the low nibbles come first, then the high ones.
    Written straight into the result (no stacking copy): this is the hottest step of loading a Q4/Q5 model."""
    n, k, m = packed.shape
    out = torch.empty((n, k, 2, m), dtype=torch.uint8, device=packed.device)
    torch.bitwise_and(packed, 0x0F, out=out[:, :, 0])
    torch.bitwise_right_shift(packed, 4, out=out[:, :, 1])
    return out.view(n, 2 * k, m)


def _k_scales(packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The 12-byte field of Q4_K/Q5_K -> eight 6-bit scales and eight 6-bit mins per block.

    Bytes 0-3 hold scales 0-3 in their low 6 bits, bytes 4-7 mins 0-3; bytes 8-11 hold scales 4-7 (low nibble) and
    mins 4-7 (high nibble), whose top two bits sit in the spare high bits of bytes 0-3 and 4-7.
    """
    s = packed.reshape(-1, 3, 4)
    lo_d, lo_m, hi = s[:, 0], s[:, 1], s[:, 2]
    scales = torch.cat((lo_d & 0x3F, (hi & 0x0F) | ((lo_d >> 2) & 0x30)), dim=-1)
    mins = torch.cat((lo_m & 0x3F, (hi >> 4) | ((lo_m >> 2) & 0x30)), dim=-1)
    return scales.to(torch.float32), mins.to(torch.float32)


def unpack_q8_0(raw: torch.Tensor) -> Unpacked:
    d = _f16(raw, 0)
    codes = raw[:, 2:34].contiguous().view(torch.int8)
    return Unpacked(codes.unsqueeze(1), d.unsqueeze(1), None)


_BIT_SHIFTS = torch.arange(8, dtype=torch.uint8)
# byte -> its 8 bits (least significant first) as "fifth bit minus one" of Q5_0: 16*bit - 16, i.e. -16 or 0
_Q5_0_HIGH = ((torch.arange(256).unsqueeze(-1) >> torch.arange(8)) & 1).mul(16).sub(16).to(torch.int8)


def unpack_q5_0(raw: torch.Tensor) -> Unpacked:
    d = _f16(raw, 0)
    # bit j of the little-endian u32 at bytes 2..5 is the fifth bit of value j; a table lookup per byte gives the
    # eight of them with the -16 offset already applied, so code = low nibble + looked-up value
    high = _Q5_0_HIGH.to(raw.device)[raw[:, 2:6].long()].reshape(-1, 32)
    low = _nibbles(raw[:, 6:22].unsqueeze(1)).view(-1, 32).view(torch.int8)
    codes = low.add_(high)
    return Unpacked(codes.unsqueeze(1), d.unsqueeze(1), None)


def unpack_q4_k(raw: torch.Tensor) -> Unpacked:
    d, dmin = _f16(raw, 0), _f16(raw, 2)
    sc, m = _k_scales(raw[:, 4:16])
    codes = _nibbles(raw[:, 16:144].reshape(-1, 4, 32))
    return Unpacked(codes.view(torch.int8), d.unsqueeze(1) * sc, dmin.unsqueeze(1) * m)


def unpack_q5_k(raw: torch.Tensor) -> Unpacked:
    d, dmin = _f16(raw, 0), _f16(raw, 2)
    sc, m = _k_scales(raw[:, 4:16])
    # byte i of the 32-byte field carries, in bit j, the fifth bit of value i of sub-block j
    high = (raw[:, 16:48].unsqueeze(1) >> _BIT_SHIFTS.to(raw.device).view(1, 8, 1)) & 1
    low = _nibbles(raw[:, 48:176].reshape(-1, 4, 32))
    codes = low | (high << 4)
    return Unpacked(codes.view(torch.int8), d.unsqueeze(1) * sc, dmin.unsqueeze(1) * m)


_PAIR_SHIFTS = torch.tensor([0, 2, 4, 6], dtype=torch.uint8).view(1, 1, 4, 1)


def unpack_q6_k(raw: torch.Tensor) -> Unpacked:
    n = raw.shape[0]
    # low nibbles: two halves of 64 bytes, each giving 4 runs of 32 values (low nibbles of 0..63, then high ones)
    low = _nibbles(raw[:, 0:128].reshape(n, 2, 64)).reshape(n, 8, 32)
    # high pairs: two halves of 32 bytes, each byte carrying bits 4-5 of four values 32 apart
    high = ((raw[:, 128:192].reshape(n, 2, 1, 32) >> _PAIR_SHIFTS.to(raw.device)) & 3).reshape(n, 8, 32)
    codes = (low | (high << 4)).view(torch.int8) - 32
    scales = raw[:, 192:208].contiguous().view(torch.int8).to(torch.float32)
    d = _f16(raw, 208)
    return Unpacked(codes.reshape(n, 16, 16), d.unsqueeze(1) * scales, None)


UNPACKERS: dict[T, Callable[[torch.Tensor], Unpacked]] = {
    T.Q8_0: unpack_q8_0, T.Q5_0: unpack_q5_0, T.Q4_K: unpack_q4_k, T.Q5_K: unpack_q5_k, T.Q6_K: unpack_q6_k,
}
FLOAT_DTYPES = {T.F32: torch.float32, T.F16: torch.float16, T.BF16: torch.bfloat16}
assert set(UNPACKERS) == TORCH_BLOCK_TYPES and set(FLOAT_DTYPES) == FLOAT_TYPES


def dequantize_blocks(raw: np.ndarray, qtype: T, shape: tuple[int, ...], dtype: torch.dtype = torch.float32,
                      device: torch.device | str = "cpu") -> torch.Tensor:
    """Decode the raw bytes of one tensor (uint8, a whole number of blocks) to a `dtype` tensor of `shape`.

    Block formats are decoded chunk by chunk on `device` (the raw bytes travel, not the floats), written straight
    into the result. The caller checks that `qtype` is in gguf_file.SUPPORTED_TYPES and that the sizes agree.
    """
    raw = np.asarray(raw)
    if qtype in FLOAT_TYPES:
        stored = _as_tensor(raw.reshape(-1)).view(FLOAT_DTYPES[qtype]).reshape(shape)
        if stored.dtype == dtype and torch.device(device).type == "cpu":
            return stored.clone()  # own the memory: the file mapping may go away
        return stored.to(device=device, dtype=dtype)
    block, type_size = GGML_QUANT_SIZES[qtype]
    blocks = raw.reshape(-1, type_size)
    out = torch.empty(shape, dtype=dtype, device=device)
    flat_out = out.view(-1, block)
    if qtype in NUMPY_BLOCK_TYPES:
        import gguf.quants

        flat_out.copy_(torch.from_numpy(gguf.quants.dequantize(blocks, qtype).reshape(-1, block)))
        return out
    unpack = UNPACKERS[qtype]
    step = max(1, _VALUES_PER_CHUNK // block)
    # float32 results go straight into `out`; other dtypes pass through one reused float32 buffer
    work = None if dtype == torch.float32 else torch.empty((step, block), dtype=torch.float32, device=out.device)
    for start in range(0, blocks.shape[0], step):
        chunk = _as_tensor(blocks[start:start + step]).to(out.device)
        dest = flat_out[start:start + chunk.shape[0]]
        if work is None:
            unpack(chunk).values(out=dest)
        else:
            dest.copy_(unpack(chunk).values(out=work[:chunk.shape[0]]))
    return out


def unpack_blocks(raw: np.ndarray, qtype: T, device: torch.device | str = "cpu") -> Unpacked:
    """Codes and scales of every block of a tensor (Q8_0, Q5_0, Q4_K, Q5_K, Q6_K), in file order."""
    if qtype not in UNPACKERS:
        raise ValueError(f"no block decoder for ggml type {qtype.name}")
    _, type_size = GGML_QUANT_SIZES[qtype]
    return UNPACKERS[qtype](_as_tensor(np.asarray(raw).reshape(-1, type_size)).to(device))


def _as_tensor(array: np.ndarray) -> torch.Tensor:
    """A torch view of (read-only, memory-mapped) bytes; the decoders only read it."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "non-writable array": we never write through this view
        return torch.from_numpy(np.ascontiguousarray(array))
