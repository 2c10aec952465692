"""Quantized checkpoints on disk: save, load (memory-mapped, no conversion), and streaming conversion of a big
sharded float checkpoint shard by shard.

A quantized checkpoint is a HF-style directory: config.json, `quantization.json` (the QuantSpec: the only place the
format is described; nothing is inferred from file names), safetensors shards (+ index when sharded) holding the
tensors described in qwq.engine.quant, and the tokenizer files when the source had them.

`quantize_checkpoint` reads one tensor at a time with plain file reads (no memory map, so the resident set holds one
tensor and the output shard being filled, whatever the input size), quantizes it a slice of rows at a time, and
writes output shards as they fill up.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Iterator

import torch
from torch import nn

from qwq.config import ModelConfig
from qwq.engine.quant import (SPEC_FILE, Int4Linear, Int8Embedding, Int8Linear, QuantSpec, iter_linears,
                              make_quant_linear, quantize_int4, quantize_int8)
from qwq.utils.errors import CheckpointError

INDEX_FILE = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 2 * 10**9
_ST_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16, "F64": torch.float64,
              "I8": torch.int8, "U8": torch.uint8, "I32": torch.int32, "I64": torch.int64}


def read_spec(directory: Path) -> QuantSpec | None:
    path = Path(directory) / SPEC_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{path}: unreadable quantization spec ({exc})") from None
    return QuantSpec.from_dict(data, str(path))


class ShardWriter:
    """Collects tensors and writes `model-XXXXX.safetensors` shards of at most `max_shard_bytes` each."""

    def __init__(self, directory: Path, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, metadata: dict | None = None
                 ) -> None:
        self.directory, self.max_shard_bytes = Path(directory), max_shard_bytes
        self.metadata = {k: str(v) for k, v in (metadata or {}).items()}
        self._pending: dict[str, torch.Tensor] = {}
        self._pending_bytes = 0
        self._shards: list[list[str]] = []
        self.total_bytes = 0

    def add(self, name: str, tensor: torch.Tensor) -> None:
        size = tensor.numel() * tensor.element_size()
        if self._pending and self._pending_bytes + size > self.max_shard_bytes:
            self._flush()
        self._pending[name] = tensor.contiguous()
        self._pending_bytes += size
        self.total_bytes += size

    def _flush(self) -> None:
        from safetensors.torch import save_file

        if not self._pending:
            return
        index = len(self._shards)
        save_file(self._pending, str(self.directory / f"shard-{index:05d}.tmp.safetensors"), metadata=self.metadata)
        self._shards.append(list(self._pending))
        self._pending, self._pending_bytes = {}, 0

    def close(self) -> list[str]:
        """Write the last shard and give the shards their final names (+ the index when there are several)."""
        self._flush()
        count = len(self._shards)
        names = ["model.safetensors"] if count == 1 else [f"model-{i + 1:05d}-of-{count:05d}.safetensors"
                                                          for i in range(count)]
        for i, name in enumerate(names):
            (self.directory / f"shard-{i:05d}.tmp.safetensors").rename(self.directory / name)
        if count > 1:
            weight_map = {tensor: names[i] for i, tensors in enumerate(self._shards) for tensor in tensors}
            index = {"metadata": {"total_size": self.total_bytes}, "weight_map": weight_map}
            (self.directory / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
        return names


def save_quantized_checkpoint(model: nn.Module, config: ModelConfig, spec: QuantSpec, directory: str | Path,
                              tokenizer=None, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> Path:
    """Write a quantized model (built by quantize_model / load_gguf_quantized) as a checkpoint directory.
    An existing directory at that path is replaced whole."""
    from qwq.utils.atomic import atomic_directory

    directory = Path(directory)
    with atomic_directory(directory) as tmp:
        writer = ShardWriter(tmp, max_shard_bytes, {"format": "pt", "qwq_quantization": spec.to_json()})
        for name, tensor in model.state_dict().items():
            if config.tie_word_embeddings and name == "lm_head.weight":
                continue
            if tensor.is_meta:
                raise CheckpointError(f"cannot save tensor {name!r}: it is on the meta device (never loaded)")
            writer.add(name, tensor.detach().cpu())
        writer.close()
        config.save_hf(tmp)
        (tmp / SPEC_FILE).write_text(spec.to_json())
        if tokenizer is not None:
            tokenizer.save(tmp)
    return directory


def build_quantized_skeleton(config: ModelConfig, spec: QuantSpec, compute_dtype: torch.dtype = torch.bfloat16
                             ) -> nn.Module:
    """The model on the meta device with the spec's quantized modules in place (ready for assign-loading)."""
    from qwq.model.qwen2 import meta_model

    model = meta_model(config)
    with torch.device("meta"):
        if spec.embedding == "int8" and not config.tie_word_embeddings:
            model.model.embed_tokens = Int8Embedding(config.vocab_size, config.hidden_size)
        for name, parent, attr, linear in list(iter_linears(model)):
            method = spec.method_for(name)
            if method == "none" or (config.tie_word_embeddings and name == "lm_head"):
                continue
            setattr(parent, attr, make_quant_linear(method, linear.in_features, linear.out_features,
                                                    linear.bias is not None, spec.group_size, compute_dtype))
    return model


def resident_bytes(config: ModelConfig, spec: QuantSpec, float_dtype: torch.dtype = torch.bfloat16) -> int:
    """Bytes of weights the engine keeps resident for `config` quantized by `spec`, its float tensors (norms,
    biases, scales, an unquantized embedding) at `float_dtype`: counted on the meta device, no weights needed."""
    from qwq.engine.quant import quantized_bytes

    model = build_quantized_skeleton(config, spec, compute_dtype=float_dtype)
    converted: dict[int, torch.Tensor] = {}  # a tied head stays tied (counted once)
    for module in model.modules():
        for name, tensor in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
            if tensor.is_floating_point() and tensor.dtype != float_dtype:
                if id(tensor) not in converted:
                    new = tensor.to(float_dtype)
                    converted[id(tensor)] = new if name in module._buffers else nn.Parameter(new, requires_grad=False)
                setattr(module, name, converted[id(tensor)])
    return quantized_bytes(model)


def load_quantized_checkpoint(directory: str | Path, dtype: torch.dtype | None = None
                              ) -> tuple[ModelConfig, QuantSpec, nn.Module]:
    """Load a quantized checkpoint (CPU): tensors read as stored, no conversion.

    `dtype` converts the float tensors that are not quantized (embedding, norms, biases); None keeps them as stored.
    """
    from qwq.model.weights import index_checkpoint, load_state_dict

    directory = Path(directory)
    spec = read_spec(directory)
    if spec is None:
        raise CheckpointError(f"{directory}: no {SPEC_FILE} (not a quantized checkpoint)")
    config = ModelConfig.from_hf(directory)
    infos = index_checkpoint(directory)
    model = build_quantized_skeleton(config, spec)
    expected = dict(model.state_dict())
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
    for name, target in expected.items():
        info = infos.get(name)
        if info is None:
            raise CheckpointError(f"{directory}: missing tensor {name!r} (shape {list(target.shape)})")
        if tuple(info.shape) != tuple(target.shape):
            raise CheckpointError(f"{info.file}: tensor {name!r} has shape {list(info.shape)}, the config and "
                                  f"{SPEC_FILE} imply {list(target.shape)}")
        if _ST_DTYPES.get(info.dtype, None) is None or (not target.is_floating_point()
                                                        and _ST_DTYPES[info.dtype] != target.dtype):
            raise CheckpointError(f"{info.file}: tensor {name!r} has dtype {info.dtype}, expected {target.dtype}")
    extra = [name for name in infos if name not in expected]
    if extra:
        raise CheckpointError(f"{infos[extra[0]].file}: unexpected tensor {extra[0]!r} for this config and spec")
    state = load_state_dict(directory)
    from qwq.engine.quant_w8a8 import W8A8Linear

    quant_buffers = {f"{n}.{b}" for n, m in model.named_modules()
                     if isinstance(m, (Int4Linear, Int8Linear, W8A8Linear))
                     for b in ("qweight", "scales", "scale_zeros", "smooth")}
    # Copy out of the file mapping: the kernels need 64-byte aligned weights (the mapping gives 8), and the engine
    # re-arranges some tensors (fused projections), which would otherwise leave the mapped originals resident too.
    state = {k: (v.to(dtype) if dtype is not None and v.is_floating_point() and k not in quant_buffers
                 else v.clone()) for k, v in state.items()}
    model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    model.model.rotary_emb.reset("cpu")
    return config, spec, model.eval()


# ---- streaming conversion of a float checkpoint ----------------------------------------------------------------------
def _read_header(path: Path) -> tuple[int, dict]:
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise CheckpointError(f"{path}: truncated safetensors file")
        size = struct.unpack("<Q", prefix)[0]
        try:
            header = json.loads(f.read(size))
        except ValueError as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from None
    return 8 + size, header


def iter_checkpoint_tensors(directory: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Every tensor of a (sharded) safetensors checkpoint, read one at a time into its own memory (no mmap)."""
    from qwq.model.weights import index_checkpoint

    infos = index_checkpoint(directory)
    by_file: dict[Path, list[str]] = {}
    for info in infos.values():
        by_file.setdefault(info.file, []).append(info.name)
    for file, names in by_file.items():
        base, header = _read_header(file)
        with open(file, "rb") as f:
            for name in names:
                entry = header[name]
                dtype = _ST_DTYPES.get(entry["dtype"])
                if dtype is None:
                    raise CheckpointError(f"{file}: tensor {name!r} has unsupported dtype {entry['dtype']}")
                start, end = entry["data_offsets"]
                buffer = bytearray(end - start)
                f.seek(base + start)
                if f.readinto(buffer) != end - start:
                    raise CheckpointError(f"{file}: truncated while reading tensor {name!r}")
                tensor = torch.frombuffer(buffer, dtype=dtype) if end > start else torch.empty(0, dtype=dtype)
                yield name, tensor.reshape(entry["shape"])


_ROWS_PER_CHUNK = 4096


def _int8_by_rows(tensor: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """quantize_int8 a slice of rows at a time: the fp32 temporaries stay small whatever the tensor's size."""
    qweight = torch.empty(tensor.shape, dtype=torch.int8)
    scales = torch.empty(tensor.shape[0])
    for start in range(0, tensor.shape[0], _ROWS_PER_CHUNK):
        qweight[start:start + _ROWS_PER_CHUNK], scales[start:start + _ROWS_PER_CHUNK] = \
            quantize_int8(tensor[start:start + _ROWS_PER_CHUNK])
    return qweight, scales


def _int4_by_rows(tensor: torch.Tensor, group_size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """quantize_int4 a slice of rows at a time (slices of whole 64-row blocks, as the packed layout needs)."""
    rows, width = tensor.shape
    if rows % 64:
        return quantize_int4(tensor, group_size, dtype)
    qweight = torch.empty(rows, width // 2, dtype=torch.uint8)
    scale_zeros = torch.empty(width // group_size, rows, 2, dtype=dtype)
    for start in range(0, rows, _ROWS_PER_CHUNK):
        end = min(rows, start + _ROWS_PER_CHUNK)
        qweight[start:end], scale_zeros[:, start:end] = quantize_int4(tensor[start:end], group_size, dtype)
    return qweight, scale_zeros


def quantize_checkpoint(source: str | Path, destination: str | Path, spec: QuantSpec,
                        dtype: torch.dtype = torch.bfloat16, compute_dtype: torch.dtype = torch.bfloat16,
                        max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, progress=None) -> Path:
    """Quantize a float HF checkpoint directory into `destination`, one tensor at a time.

    Linear weights the spec covers become int8/int4 tensors; every other tensor is converted to `dtype`.
    `progress(name)` is called after each tensor (for a progress bar).
    """
    from qwq.utils.atomic import atomic_directory

    source, destination = Path(source), Path(destination)
    config = ModelConfig.from_hf(source)
    skeleton = build_quantized_skeleton(config, spec, compute_dtype)
    quantized = {f"{name}.weight": module for name, module in skeleton.named_modules()
                 if isinstance(module, (Int4Linear, Int8Linear))}
    expected = dict(skeleton.state_dict())
    seen: set[str] = set()
    with atomic_directory(destination) as tmp:
        writer = ShardWriter(tmp, max_shard_bytes, {"format": "pt", "qwq_quantization": spec.to_json()})
        embed_int8 = isinstance(skeleton.model.embed_tokens, Int8Embedding)
        for name, tensor in iter_checkpoint_tensors(source):
            if config.tie_word_embeddings and name == "lm_head.weight":
                continue
            if embed_int8 and name == "model.embed_tokens.weight":
                qweight, scales = _int8_by_rows(tensor)
                writer.add("model.embed_tokens.qweight", qweight)
                writer.add("model.embed_tokens.scales", scales.to(dtype))
                seen.update({"model.embed_tokens.qweight", "model.embed_tokens.scales"})
                del tensor
                if progress is not None:
                    progress(name)
                continue
            module = quantized.get(name)
            prefix = name[: -len("weight")]
            if module is not None:
                if tuple(tensor.shape) != (module.out_features, module.in_features):
                    raise CheckpointError(f"{source}: tensor {name!r} has shape {list(tensor.shape)}, expected "
                                          f"{[module.out_features, module.in_features]}")
                if isinstance(module, Int8Linear):
                    qweight, scales = _int8_by_rows(tensor)
                    writer.add(prefix + "qweight", qweight)
                    writer.add(prefix + "scales", scales.to(compute_dtype))
                    seen.update({prefix + "qweight", prefix + "scales"})
                else:
                    qweight, scale_zeros = _int4_by_rows(tensor, module.group_size, compute_dtype)
                    writer.add(prefix + "qweight", qweight)
                    writer.add(prefix + "scale_zeros", scale_zeros)
                    seen.update({prefix + "qweight", prefix + "scale_zeros"})
            else:
                if name not in expected:
                    raise CheckpointError(f"{source}: unexpected tensor {name!r} (not part of this Qwen2 config)")
                if tuple(tensor.shape) != tuple(expected[name].shape):
                    raise CheckpointError(f"{source}: tensor {name!r} has shape {list(tensor.shape)}, expected "
                                          f"{list(expected[name].shape)}")
                writer.add(name, tensor.to(dtype) if tensor.is_floating_point() else tensor)
                seen.add(name)
            del tensor
            if progress is not None:
                progress(name)
        missing = [n for n in expected if n not in seen and not (config.tie_word_embeddings and n == "lm_head.weight")]
        if missing:
            raise CheckpointError(f"{source}: missing tensor {missing[0]!r}")
        writer.close()
        config.replace(torch_dtype=str(dtype).removeprefix("torch.")).save_hf(tmp)
        (tmp / SPEC_FILE).write_text(spec.to_json())
        _copy_tokenizer_files(source, tmp)
    return destination


def _copy_tokenizer_files(source: Path, destination: Path) -> None:
    import shutil

    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                 "added_tokens.json", "chat_template.jinja", "generation_config.json"):
        if (source / name).is_file() and not (destination / name).exists():
            shutil.copy2(source / name, destination / name)
