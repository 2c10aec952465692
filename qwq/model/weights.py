"""Hugging Face safetensors checkpoints: read (single file or sharded), load into a Qwen2 model, save.

Loading builds the model on the meta device (no memory, no init), memory-maps every shard and hands the mapped
tensors to `load_state_dict(assign=True)`: weights stored in the requested dtype are never copied. Everything is
checked against the safetensors headers BEFORE any tensor data is touched, and every problem raises
CheckpointError naming the tensor and the file: missing / unexpected tensors, wrong shape, non-float dtype,
truncated or corrupt files, a shard the index names but that is absent, an index entry the shard does not hold.

Saving writes config.json (+ generation_config.json), safetensors shards of at most `max_shard_bytes` and, when
there is more than one shard, `model.safetensors.index.json` -- the layout transformers writes and reads. A tied
LM head is not stored (the embedding is), as transformers does.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from qwq.config import ModelConfig
from qwq.utils.errors import CheckpointError

if TYPE_CHECKING:
    from qwq.model.qwen2 import Qwen2ForCausalLM

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9  # transformers' default "5GB"
_MAX_HEADER_BYTES = 100 * 2**20

# safetensors dtype codes -> torch dtypes (those a checkpoint of this model may carry).
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_FLOAT_CODES = {"F64", "F32", "F16", "BF16"}
_ITEM_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


@dataclass(frozen=True)
class TensorInfo:
    """What a safetensors header says about one tensor."""

    name: str
    file: Path
    dtype: str  # safetensors code, e.g. "BF16"
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count * _ITEM_BYTES.get(self.dtype, 1)


def read_safetensors_header(path: str | Path) -> dict[str, TensorInfo]:
    """Parse and validate a safetensors header without reading tensor data (a truncated file names its tensor)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such safetensors file")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file ({size} bytes, not even a header length)")
        header_len = struct.unpack("<Q", prefix)[0]
        if header_len > min(_MAX_HEADER_BYTES, size - 8):
            raise CheckpointError(f"{path}: corrupt or truncated safetensors file (header of {header_len} bytes in "
                                  f"a {size}-byte file)")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("header is not a JSON object")
    except (ValueError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    data_bytes = size - 8 - header_len
    infos = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape = entry["dtype"], tuple(int(s) for s in entry["shape"])
            start, end = (int(offset) for offset in entry["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(f"{path}: corrupt safetensors header entry for tensor {name!r}") from None
        info = TensorInfo(name, path, dtype, shape)
        if end > data_bytes:
            raise CheckpointError(f"{path}: truncated safetensors file: tensor {name!r} needs bytes {start}..{end} "
                                  f"of the data section, which has only {data_bytes}")
        if dtype in _ITEM_BYTES and end - start != info.nbytes:
            raise CheckpointError(f"{path}: corrupt safetensors header: tensor {name!r} {dtype}{list(shape)} "
                                  f"should span {info.nbytes} bytes, the header says {end - start}")
        infos[name] = info
    return infos


def _read_index(index_path: Path) -> dict[str, Path]:
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{index_path}: invalid safetensors index ({exc})") from None
    return {name: index_path.parent / shard for name, shard in weight_map.items()}


def index_checkpoint(path: str | Path) -> dict[str, TensorInfo]:
    """Every tensor of a checkpoint (a .safetensors file, or a HF directory, single-file or sharded) -> its header."""
    path = Path(path)
    if path.is_file():
        return read_safetensors_header(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint file or directory")
    if (path / SINGLE_FILE).is_file():
        return read_safetensors_header(path / SINGLE_FILE)
    index_path = path / INDEX_FILE
    if not index_path.is_file():
        found = sorted(p.name for p in path.glob("*.safetensors"))
        if len(found) == 1:
            return read_safetensors_header(path / found[0])
        what = f"{len(found)} .safetensors files but no {INDEX_FILE}" if found else "no .safetensors weights"
        raise CheckpointError(f"{path}: {what} (only safetensors checkpoints are supported)")
    weight_map = _read_index(index_path)
    headers: dict[Path, dict[str, TensorInfo]] = {}
    infos = {}
    for name, shard in weight_map.items():
        if shard not in headers:
            if not shard.is_file():
                raise CheckpointError(f"{index_path}: missing shard {shard.name} (it should hold tensor {name!r})")
            headers[shard] = read_safetensors_header(shard)
        if name not in headers[shard]:
            raise CheckpointError(f"{index_path}: tensor {name!r} is mapped to {shard.name}, which does not hold it")
        infos[name] = headers[shard][name]
    return infos


def _load_tensors(infos: dict[str, TensorInfo]) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError, safe_open

    by_file: dict[Path, list[str]] = {}
    for info in infos.values():
        by_file.setdefault(info.file, []).append(info.name)
    tensors = {}
    for file, names in by_file.items():
        name = None
        try:
            # Tensors returned by a memory-mapped safe_open stay valid (and mapped) after it closes.
            with safe_open(str(file), framework="pt", device="cpu") as f:
                for name in names:
                    tensors[name] = f.get_tensor(name)
        except SafetensorError as exc:
            raise CheckpointError(f"{file}: cannot read tensor {name!r} ({exc})") from None
    return tensors


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of a checkpoint, memory-mapped from disk (nothing is read until used, nothing is copied)."""
    return _load_tensors(index_checkpoint(path))


def _where(path: Path, infos: dict[str, TensorInfo]) -> str:
    files = sorted({info.file.name for info in infos.values()})
    if path.is_dir() and (path / INDEX_FILE).is_file():
        return str(path / INDEX_FILE)
    return str(path / files[0]) if len(files) == 1 and path.is_dir() else str(path)


def _check_against_model(path: Path, infos: dict[str, TensorInfo], expected: dict[str, torch.Tensor],
                         tied: bool) -> None:
    for name, param in expected.items():
        if name not in infos:
            raise CheckpointError(f"{_where(path, infos)}: missing tensor {name!r} (shape {list(param.shape)})")
    for name, info in infos.items():
        if name == "lm_head.weight" and tied:
            target = expected["model.embed_tokens.weight"]
        elif name not in expected:
            raise CheckpointError(f"{info.file}: unexpected tensor {name!r} (not a parameter of this Qwen2 config)")
        else:
            target = expected[name]
        if info.shape != tuple(target.shape):
            raise CheckpointError(f"{info.file}: tensor {name!r} has shape {list(info.shape)}, the config expects "
                                  f"{list(target.shape)}")
        if info.dtype not in _FLOAT_CODES:
            raise CheckpointError(f"{info.file}: tensor {name!r} has dtype {info.dtype}, expected a float type "
                                  f"(F32, F16 or BF16)")


def _dominant_dtype(infos: dict[str, TensorInfo]) -> torch.dtype:
    totals: dict[str, int] = {}
    for info in infos.values():
        totals[info.dtype] = totals.get(info.dtype, 0) + info.nbytes
    return _DTYPES[max(totals, key=totals.get)]


def load_hf_checkpoint(directory: str | Path, dtype: torch.dtype | str | None = None,
                       device: torch.device | str = "cpu") -> tuple[ModelConfig, "Qwen2ForCausalLM"]:
    """Build the model on the meta device and assign the memory-mapped weights.

    `dtype=None` keeps the dtype most of the stored bytes have (no conversion, no copy); tensors stored otherwise
    are converted to it so the model has a single dtype.
    """
    from qwq.model.qwen2 import meta_model

    if isinstance(dtype, str):
        if dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"dtype must be float32, bfloat16 or float16, got {dtype!r}")
        dtype = getattr(torch, dtype)
    directory = Path(directory)
    config = ModelConfig.from_hf(directory)
    infos = index_checkpoint(directory)
    model = meta_model(config)
    expected = dict(model.state_dict())
    tied = config.tie_word_embeddings
    if tied:
        expected.pop("lm_head.weight", None)
    _check_against_model(directory, infos, expected, tied)

    dtype = dtype or _dominant_dtype(infos)
    state = {name: tensor.to(device=device, dtype=dtype) for name, tensor in _load_tensors(infos).items()}
    stored_head = state.pop("lm_head.weight", None) if tied else None
    if stored_head is not None and not torch.equal(stored_head, state["model.embed_tokens.weight"]):
        raise CheckpointError(f"{infos['lm_head.weight'].file}: tensor 'lm_head.weight' differs from "
                              f"'model.embed_tokens.weight' but the config ties them (tie_word_embeddings=true)")
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb.reset(device)
    leftover = [name for name, p in model.named_parameters() if p.is_meta]
    if leftover:  # the key checks above make this unreachable unless the architecture and the checks diverge
        raise CheckpointError(f"{directory}: tensor {leftover[0]!r} was not loaded")
    return config, model.eval()


def _dtype_name(model: torch.nn.Module) -> str | None:
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    if len(dtypes) != 1:
        return None
    return str(dtypes.pop()).removeprefix("torch.")


def save_hf_checkpoint(model: torch.nn.Module, config: ModelConfig, directory: str | Path,
                       max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    """Write `model` as a HF checkpoint directory. The directory is built aside and swapped in whole: an existing
    directory at that path is REPLACED (so no stale shard survives); add tokenizer files after saving."""
    from safetensors.torch import save_file

    from qwq.config import DTYPE_BYTES
    from qwq.utils.atomic import atomic_directory

    if max_shard_bytes <= 0:
        raise ValueError(f"max_shard_bytes must be positive, got {max_shard_bytes}")
    state = dict(model.state_dict())
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    for name, tensor in state.items():
        if tensor.is_meta:
            raise CheckpointError(f"cannot save tensor {name!r}: it is on the meta device (never loaded)")

    shards: list[list[str]] = [[]]
    shard_bytes = 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and shard_bytes + nbytes > max_shard_bytes:
            shards.append([])
            shard_bytes = 0
        shards[-1].append(name)
        shard_bytes += nbytes

    dtype_name = _dtype_name(model)
    if dtype_name in DTYPE_BYTES:
        config = config.replace(torch_dtype=dtype_name)
    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        config.save_hf(tmp)
        weight_map = {}
        for i, names in enumerate(shards, start=1):
            file = SINGLE_FILE if len(shards) == 1 else f"model-{i:05d}-of-{len(shards):05d}.safetensors"
            tensors = {name: state[name].detach().to("cpu").contiguous() for name in names}
            save_file(tensors, str(tmp / file), metadata={"format": "pt"})
            weight_map.update({name: file for name in names})
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(t.numel() * t.element_size() for t in state.values()),
                                  "total_parameters": sum(t.numel() for t in state.values())},
                     "weight_map": dict(sorted(weight_map.items()))}
            (tmp / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return directory
