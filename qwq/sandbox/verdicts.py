"""Verdicts, limits and results of sandboxed runs (the data every sandbox caller sees)."""


from __future__ import annotations

import enum
import signal as _signal
from dataclasses import asdict, dataclass, fields

from qwq.sandbox.languages import Language
from qwq.sandbox.protocol import unb64
from qwq.utils.errors import QwqError, UsageError


class SandboxUnavailable(QwqError):
    """The sandbox cannot start, or lacks an isolation layer the caller requires."""


class Verdict(str, enum.Enum):
    OK = "OK"
    WRONG_ANSWER = "WRONG_ANSWER"
    TIME_LIMIT = "TIME_LIMIT"  # CPU time limit
    WALL_TIMEOUT = "WALL_TIMEOUT"  # idle past the wall-clock guard (sleeping, blocked)
    MEMORY_LIMIT = "MEMORY_LIMIT"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    COMPILE_ERROR = "COMPILE_ERROR"
    OUTPUT_LIMIT = "OUTPUT_LIMIT"
    SANDBOX_ERROR = "SANDBOX_ERROR"  # infrastructure failure: callers must treat it as "cannot score"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Limits:
    cpu_seconds: float = 4.0
    wall_seconds: float | None = None  # None: 2 * cpu_seconds + 1
    memory_mb: int | None = 1024  # address space (plus the runtime's reserve for JS); None = unlimited
    stack_mb: int = 16  # also each thread's reserved stack, which counts against memory_mb
    max_processes: int = 64  # processes + threads of the session's uid
    file_size_mb: int = 64
    open_files: int = 256
    disk_mb: int = 128  # /sandbox + /tmp + /dev/shm together
    stdout_bytes: int = 8 * 1024 * 1024
    stderr_bytes: int = 1024 * 1024

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None and f.name in ("wall_seconds", "memory_mb"):
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise UsageError(f"Limits.{f.name} must be a positive number, got {value!r}")

    @property
    def effective_wall_seconds(self) -> float:
        return self.wall_seconds if self.wall_seconds is not None else 2 * self.cpu_seconds + 1

    def to_wire(self, language: Language | None = None) -> dict:
        extra = language.address_space_extra_mb if language else 0
        return {"cpu_seconds": float(self.cpu_seconds), "wall_seconds": self.effective_wall_seconds,
                "wall_cap_seconds": 4 * self.effective_wall_seconds + 2 * self.cpu_seconds,
                "address_space_mb": None if self.memory_mb is None else int(self.memory_mb) + extra,
                "stack_mb": int(self.stack_mb), "max_processes": int(self.max_processes),
                "file_size_mb": int(self.file_size_mb), "open_files": int(self.open_files),
                "stdout_bytes": int(self.stdout_bytes), "stderr_bytes": int(self.stderr_bytes)}

    @classmethod
    def from_dict(cls, data: dict | None) -> "Limits":
        data = dict(data or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown limit field(s) {unknown} (known: {sorted(known)})")
        return cls(**data)


COMPILE_LIMITS = Limits(cpu_seconds=30, wall_seconds=60, memory_mb=2048, max_processes=32, file_size_mb=256,
                        stdout_bytes=256 * 1024, stderr_bytes=256 * 1024)


@dataclass
class RunResult:
    verdict: Verdict
    stdout: str = ""
    stderr: str = ""
    exit_code: int | None = None
    signal: int | None = None
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0
    peak_memory_mb: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    message: str = ""
    compile: "RunResult | None" = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.OK

    def to_dict(self) -> dict:
        data = asdict(self)
        data["verdict"] = self.verdict.value
        data["compile"] = self.compile.to_dict() if self.compile is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunResult":
        data = dict(data)
        data["verdict"] = Verdict(data["verdict"])
        if data.get("compile") is not None:
            data["compile"] = cls.from_dict(data["compile"])
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def sandbox_error(cls, message: str) -> "RunResult":
        return cls(Verdict.SANDBOX_ERROR, message=message)


_OOM_MARKERS = (b"MemoryError", b"std::bad_alloc", b"JavaScript heap out of memory", b"Fatal process out of memory",
                b"Failed to reserve virtual memory", b"Cannot allocate memory")


def classify(proc: dict, limits: Limits) -> tuple[Verdict, str]:
    """The verdict of one program from the supervisor's report (CPU time, never wall time, decides TIME_LIMIT)."""
    if proc.get("exec_error"):
        return Verdict.SANDBOX_ERROR, f"could not start the program: {proc['exec_error']}"
    sig, code, killed = proc.get("signal"), proc.get("exit_code"), proc.get("killed")
    if killed == "output" or proc.get("stdout_truncated") or proc.get("stderr_truncated"):
        return Verdict.OUTPUT_LIMIT, "output exceeded the cap; the run was stopped"
    failed = sig is not None or code or killed is not None
    stderr = unb64(proc.get("stderr"))
    if failed and any(marker in stderr[:16384] or marker in stderr[-4096:] for marker in _OOM_MARKERS):
        # the runtime said it ran out of memory; whatever happened after (a hang, a CPU kill) is a consequence
        return Verdict.MEMORY_LIMIT, f"out of memory (limit {limits.memory_mb} MB)"
    if killed == "cpu" or sig == _signal.SIGXCPU or proc.get("cpu_seconds", 0.0) > limits.cpu_seconds:
        return Verdict.TIME_LIMIT, f"CPU time limit of {limits.cpu_seconds:g} s exceeded"
    if killed == "wall":
        return Verdict.WALL_TIMEOUT, f"idle past the wall-clock guard of {limits.effective_wall_seconds:g} s"
    if sig is not None or code:
        if sig == _signal.SIGXFSZ:
            return Verdict.RUNTIME_ERROR, f"file size limit of {limits.file_size_mb} MB exceeded"
        if sig is not None:
            return Verdict.RUNTIME_ERROR, f"killed by signal {_signal.Signals(sig).name if sig in _SIGNALS else sig}"
        return Verdict.RUNTIME_ERROR, f"exit code {code}"
    return Verdict.OK, ""


_SIGNALS = {s.value for s in _signal.Signals}


def result_from_proc(proc: dict, limits: Limits) -> RunResult:
    verdict, message = classify(proc, limits)
    return RunResult(verdict=verdict, stdout=unb64(proc.get("stdout")).decode(errors="replace"),
                     stderr=unb64(proc.get("stderr")).decode(errors="replace"), exit_code=proc.get("exit_code"),
                     signal=proc.get("signal"), cpu_seconds=round(float(proc.get("cpu_seconds", 0.0)), 4),
                     wall_seconds=round(float(proc.get("wall_seconds", 0.0)), 4),
                     peak_memory_mb=round(float(proc.get("peak_memory_mb", 0.0)), 2),
                     stdout_truncated=bool(proc.get("stdout_truncated")),
                     stderr_truncated=bool(proc.get("stderr_truncated")), message=message)


def sandbox_env(home: str) -> dict[str, str]:
    """The whole environment a program sees: nothing inherited from the host."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": home, "TMPDIR": "/tmp", "LANG": "C.UTF-8",
            "LC_ALL": "C.UTF-8", "MALLOC_ARENA_MAX": "2", "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
