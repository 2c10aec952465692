"""qwq's own CPU kernels, compiled on first use: weight-only GEMMs (wo_gemm.cpp: int8 / int4 weights, VNNI) and a
whole decode step of the decoder layers built on them (decode_layer.cpp, used by qwq.engine.fused_decode).

`kernel_ops()` returns the loaded ops (`int8_gemm`, `int4_gemm`, `decode_layers`) or None, in which case the
quantized modules keep PyTorch's weight-only kernels and the engine its module path. None when: QWQ_KERNELS=0 is
set, the CPU lacks AVX-512 VNNI, or the build failed (one warning says why). The build goes through
torch.utils.cpp_extension (g++ and ninja) into the user cache, keyed by the sources, the compiler flags, torch's
version and the CPU's flags, so each machine compiles it once (~30-60 s); later processes only load the library.
"""

from __future__ import annotations

import hashlib
import os
import platform
import threading
import warnings
from pathlib import Path

SOURCE = Path(__file__).with_name("wo_gemm.cpp")
# Compiled into the same library; they include wo_gemm.h (hashed into the build key with the sources).
EXTRA_SOURCES = (Path(__file__).with_name("decode_layer.cpp"), Path(__file__).with_name("bf16_gemm.cpp"))
HEADERS = (Path(__file__).with_name("wo_gemm.h"),)
ENV_SWITCH = "QWQ_KERNELS"  # "0": never use them
REQUIRED_CPU_FLAGS = ("avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni")
# -fopenmp: at::parallel_for is an OpenMP loop in the header (torch's own libgomp is the one loaded at run time).
CFLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx512vnni", "-mfma", "-fopenmp")
LIBRARY_NAMESPACE = "qwq_kernels"

_lock = threading.Lock()
_state: dict = {}


class KernelBuildError(RuntimeError):
    pass


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.partition(":")[2].split())
    except OSError:
        pass
    return set()


def unsupported_reason() -> str | None:
    """Why these kernels cannot run here, or None."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return f"the CPU is {platform.machine()}, not x86-64"
    missing = [f for f in REQUIRED_CPU_FLAGS if f not in cpu_flags()]
    if missing:
        return f"the CPU lacks {', '.join(missing)}"
    return None


def build_key(source: Path) -> str:
    import torch

    digest = hashlib.sha256(source.read_bytes())
    for extra in EXTRA_SOURCES + HEADERS:
        digest.update(b"\0" + extra.read_bytes())
    for part in (" ".join(CFLAGS), torch.__version__, " ".join(sorted(cpu_flags()))):
        digest.update(b"\0" + part.encode())
    return digest.hexdigest()[:16]


def build(source: Path, cache: Path | None = None) -> None:
    """Compile (or reuse) the extension and load it into this process: its ops appear in torch.ops.qwq_kernels."""
    import torch
    from torch.utils import cpp_extension

    from qwq.utils.paths import cache_dir

    key = build_key(source)
    directory = (cache or cache_dir() / "kernels") / key
    directory.mkdir(parents=True, exist_ok=True)
    try:
        cpp_extension.load(name=f"qwq_wo_gemm_{key}", sources=[str(source), *map(str, EXTRA_SOURCES)],
                           extra_cflags=list(CFLAGS), extra_include_paths=[str(HEADERS[0].parent)],
                           extra_ldflags=["-fopenmp"], build_directory=str(directory), is_python_module=False,
                           verbose=False)
    except Exception as exc:  # compiler missing, compile error, load error: all mean "use the fallback"
        lines = [line for line in str(exc).strip().splitlines() if line.strip()]
        raise KernelBuildError(f"building {source.name} in {directory} failed: "
                               f"{lines[-1] if lines else type(exc).__name__}") from None
    if not hasattr(torch.ops, LIBRARY_NAMESPACE) or not hasattr(getattr(torch.ops, LIBRARY_NAMESPACE), "int8_gemm"):
        raise KernelBuildError(f"{directory}: the library loaded but registered no {LIBRARY_NAMESPACE} ops")


def kernel_ops():
    """The kernels' op namespace (torch.ops.qwq_kernels), or None to use the fallback. Tried once per process."""
    if "ops" in _state and os.environ.get(ENV_SWITCH) is None:  # the common case: one dict lookup per call
        return _state["ops"]
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    with _lock:
        if "ops" not in _state:
            _state["ops"] = _load(SOURCE, None)
    return _state["ops"]


def _load(source: Path, cache: Path | None):
    import torch

    reason = unsupported_reason()
    if reason is None:
        try:
            build(source, cache)
            return getattr(torch.ops, LIBRARY_NAMESPACE)
        except (KernelBuildError, OSError) as exc:
            reason = str(exc)
    warnings.warn(f"qwq CPU kernels unavailable ({reason}); using PyTorch's weight-only kernels "
                  f"(slower; set {ENV_SWITCH}=0 to silence this)", RuntimeWarning, stacklevel=3)
    return None


def reset_for_tests() -> None:
    """Forget the load result so that the next kernel_ops() tries again (the library, once loaded, stays)."""
    with _lock:
        _state.clear()
