"""The GGUF container: header, metadata and tensor directory, parsed straight from a memory map.

Why not `gguf.GGUFReader`: it builds a numpy view for every part of every string, which takes ~7 s for the 300k
vocabulary and merge strings of a Qwen2 GGUF. Walking the header with `struct` takes a fraction of a second, and
every bounds check can name the field it was reading. The `gguf` package still supplies the type tables.

Layout (GGUF v2/v3, little-endian): magic `GGUF`, u32 version, u64 tensor count, u64 metadata count; metadata as
(string key, u32 value type, value); tensor infos as (string name, u32 n_dims, u64 dims[n_dims] innermost first,
u32 ggml type, u64 offset relative to the data section); the data section starts at the next multiple of
`general.alignment` (default 32). Strings are u64 length + UTF-8 bytes.

Torch-free: the tokenizer and `qwq info` read metadata through this module.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from qwq.utils.errors import GGUFError

# ggml types qwq decodes: plain floats, the block formats with a torch decoder (qwq.model.gguf_quants), and the
# rarer legacy ones it decodes through gguf.quants (numpy). Everything else (IQ*, TQ*, MXFP4...) is refused by name.
FLOAT_TYPES = frozenset({GGMLQuantizationType.F32, GGMLQuantizationType.F16, GGMLQuantizationType.BF16})
TORCH_BLOCK_TYPES = frozenset({GGMLQuantizationType.Q8_0, GGMLQuantizationType.Q5_0, GGMLQuantizationType.Q4_K,
                               GGMLQuantizationType.Q5_K, GGMLQuantizationType.Q6_K})
NUMPY_BLOCK_TYPES = frozenset({GGMLQuantizationType.Q4_0, GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q5_1,
                               GGMLQuantizationType.Q2_K, GGMLQuantizationType.Q3_K})
SUPPORTED_TYPES = FLOAT_TYPES | TORCH_BLOCK_TYPES | NUMPY_BLOCK_TYPES

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS

_SCALARS: dict[int, tuple[str, int]] = {
    GGUFValueType.UINT8: ("<B", 1), GGUFValueType.INT8: ("<b", 1), GGUFValueType.UINT16: ("<H", 2),
    GGUFValueType.INT16: ("<h", 2), GGUFValueType.UINT32: ("<I", 4), GGUFValueType.INT32: ("<i", 4),
    GGUFValueType.FLOAT32: ("<f", 4), GGUFValueType.BOOL: ("<?", 1), GGUFValueType.UINT64: ("<Q", 8),
    GGUFValueType.INT64: ("<q", 8), GGUFValueType.FLOAT64: ("<d", 8),
}
_NUMPY_SCALARS: dict[int, str] = {
    GGUFValueType.UINT8: "<u1", GGUFValueType.INT8: "<i1", GGUFValueType.UINT16: "<u2", GGUFValueType.INT16: "<i2",
    GGUFValueType.UINT32: "<u4", GGUFValueType.INT32: "<i4", GGUFValueType.FLOAT32: "<f4", GGUFValueType.BOOL: "?",
    GGUFValueType.UINT64: "<u8", GGUFValueType.INT64: "<i8", GGUFValueType.FLOAT64: "<f8",
}


def _float32_value(x: float) -> float:
    """A float32 metadata value as the shortest decimal that round-trips in float32 (9.99999997e-07 -> 1e-06), so
    configs read from GGUF compare equal to the HF config.json values they were converted from."""
    return float(str(np.float32(x)))


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dims: tuple[int, ...]  # ggml order: dims[0] is the contiguous (innermost) one
    type_id: int
    offset: int  # absolute offset in the file
    nbytes: int

    @property
    def ggml_type(self) -> GGMLQuantizationType:
        return GGMLQuantizationType(self.type_id)

    @property
    def shape(self) -> tuple[int, ...]:
        """PyTorch order (outermost first): a Linear weight is [out_features, in_features]."""
        return tuple(reversed(self.dims))


@dataclass(frozen=True)
class GGUFHeader:
    path: Path
    version: int
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_offset: int
    file_size: int


class _Cursor:
    """Bounds-checked little-endian reads from a buffer; every error names the file and the field being read."""

    def __init__(self, buf, path: Path) -> None:
        self.buf, self.path, self.pos, self.size = buf, path, 0, len(buf)

    def fail(self, field: str, problem: str) -> GGUFError:
        return GGUFError(f"{self.path}: {problem} while reading {field} (at byte {self.pos})")

    def need(self, n: int, field: str) -> None:
        if n < 0 or self.pos + n > self.size:
            raise self.fail(field, f"truncated header: {n} more bytes needed, {self.size - self.pos} left")

    def scalar(self, fmt: str, width: int, field: str):
        self.need(width, field)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += width
        return value

    def u32(self, field: str) -> int:
        return self.scalar("<I", 4, field)

    def u64(self, field: str) -> int:
        return self.scalar("<Q", 8, field)

    def string(self, field: str) -> str:
        n = self.u64(field)
        self.need(n, field)
        raw = self.buf[self.pos:self.pos + n]
        self.pos += n
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(field, f"invalid UTF-8 ({exc.reason})") from None

    def value(self, type_id: int, field: str) -> Any:
        if type_id == GGUFValueType.STRING:
            return self.string(field)
        if type_id == GGUFValueType.ARRAY:
            return self.array(field)
        if type_id not in _SCALARS:
            raise self.fail(field, f"unknown value type {type_id}")
        fmt, width = _SCALARS[type_id]
        value = self.scalar(fmt, width, field)
        return _float32_value(value) if type_id == GGUFValueType.FLOAT32 else value

    def array(self, field: str) -> list:
        item_type = self.u32(f"{field} (array item type)")
        count = self.u64(f"{field} (array length)")
        if item_type in _NUMPY_SCALARS:
            dtype = np.dtype(_NUMPY_SCALARS[item_type])
            self.need(count * dtype.itemsize, field)
            values = np.frombuffer(self.buf, dtype=dtype, count=count, offset=self.pos)
            self.pos += count * dtype.itemsize
            return values.tolist()  # float32 arrays (token scores) stay exact float32 values, not rounded reprs
        if item_type == GGUFValueType.STRING:
            return self._strings(count, field)
        if item_type == GGUFValueType.ARRAY:
            return [self.array(f"{field}[{i}]") for i in range(count)]
        raise self.fail(field, f"unknown array item type {item_type}")

    def _strings(self, count: int, field: str) -> list[str]:
        # the hot loop of the whole header (300k vocabulary and merge strings): keep it tight
        buf, pos, size, unpack = self.buf, self.pos, self.size, struct.unpack_from
        out: list[str] = []
        append = out.append
        try:
            for _ in range(count):
                (n,) = unpack("<Q", buf, pos)
                pos += 8
                end = pos + n
                if end > size:
                    raise struct.error
                append(buf[pos:end].decode("utf-8"))
                pos = end
        except struct.error:
            self.pos = pos
            raise self.fail(f"{field}[{len(out)}]", "truncated header") from None
        except UnicodeDecodeError as exc:
            self.pos = pos
            raise self.fail(f"{field}[{len(out)}]", f"invalid UTF-8 ({exc.reason})") from None
        self.pos = pos
        return out


def tensor_nbytes(name: str, dims: tuple[int, ...], type_id: int, path: Path) -> int:
    try:
        qtype = GGMLQuantizationType(type_id)
    except ValueError:
        raise GGUFError(f"{path}: tensor {name!r} has unknown ggml type id {type_id}") from None
    if qtype not in GGML_QUANT_SIZES:
        raise GGUFError(f"{path}: tensor {name!r} has ggml type {qtype.name} with no known block size")
    block, type_size = GGML_QUANT_SIZES[qtype]
    if dims and dims[0] % block:
        raise GGUFError(f"{path}: tensor {name!r} ({qtype.name}) has a row of {dims[0]} elements, not a multiple of "
                        f"the block size {block}")
    count = 1
    for d in dims:
        count *= d
    return count // block * type_size


def read_header(path: str | Path) -> GGUFHeader:
    """Parse a GGUF file's header (metadata + tensor directory); tensor data is not read."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            if size < 24:
                raise GGUFError(f"{path}: {size} bytes is too short for a GGUF header (truncated or not GGUF)")
            mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except OSError as exc:
        raise GGUFError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        return _parse(mapped, path)
    finally:
        mapped.close()


def _parse(buf, path: Path) -> GGUFHeader:
    cur = _Cursor(buf, path)
    magic = bytes(buf[:4])
    if magic != MAGIC:
        raise GGUFError(f"{path}: bad magic {magic!r} (expected b'GGUF'): not a GGUF file or corrupt")
    cur.pos = 4
    version = cur.u32("version")
    if version not in (2, 3):
        if version & 0xFFFF == 0 and (version >> 24) in (2, 3):
            raise GGUFError(f"{path}: big-endian GGUF files are not supported")
        raise GGUFError(f"{path}: unsupported GGUF version {version} (qwq reads versions 2 and 3)")
    n_tensors = cur.u64("tensor_count")
    n_kv = cur.u64("metadata_kv_count")
    # each entry takes at least 8 bytes on disk: a count beyond that is corruption, not a reason to allocate
    if n_tensors > cur.size // 8 or n_kv > cur.size // 8:
        raise GGUFError(f"{path}: truncated or corrupt header: tensor_count {n_tensors} and metadata_kv_count "
                        f"{n_kv} cannot fit in {cur.size} bytes")
    metadata: dict[str, Any] = {}
    for i in range(n_kv):
        key = cur.string(f"metadata key #{i}")
        type_id = cur.u32(f"type of metadata {key!r}")
        metadata[key] = cur.value(type_id, f"metadata {key!r}")
    raw_tensors = []
    for i in range(n_tensors):
        name = cur.string(f"name of tensor #{i}")
        n_dims = cur.u32(f"n_dims of tensor {name!r}")
        if n_dims > MAX_DIMS:
            raise cur.fail(f"tensor {name!r}", f"corrupt header: {n_dims} dimensions (at most {MAX_DIMS})")
        dims = tuple(cur.u64(f"dims of tensor {name!r}") for _ in range(n_dims))
        type_id = cur.u32(f"type of tensor {name!r}")
        offset = cur.u64(f"offset of tensor {name!r}")
        raw_tensors.append((name, dims, type_id, offset))
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GGUFError(f"{path}: metadata 'general.alignment' must be a positive power of two, got {alignment!r}")
    data_offset = -(-cur.pos // alignment) * alignment
    tensors, seen = [], set()
    for name, dims, type_id, offset in raw_tensors:
        if name in seen:
            raise GGUFError(f"{path}: tensor {name!r} appears twice in the tensor directory")
        seen.add(name)
        nbytes = tensor_nbytes(name, dims, type_id, path)
        start = data_offset + offset
        if start + nbytes > cur.size:
            raise GGUFError(f"{path}: data of tensor {name!r} ends at byte {start + nbytes:,}, past the end of the "
                            f"file ({cur.size:,} bytes): the file is truncated")
        tensors.append(TensorInfo(name, dims, type_id, start, nbytes))
    return GGUFHeader(path, version, metadata, tensors, alignment, data_offset, cur.size)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Only the metadata (tokenizer, chat template, hyper-parameters) of a GGUF file."""
    return read_header(path).metadata
