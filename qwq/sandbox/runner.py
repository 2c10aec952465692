"""Run untrusted programs (Python, C++, JavaScript) in isolation and give each run a verdict.

How a run is contained
----------------------
A single-threaded fork server (`forkserver.py`) starts every session; the session's launcher unshares the mount,
PID, network, IPC and UTS namespaces and forks a supervisor that is PID 1 there (`supervisor.py`). The supervisor
pivots into a private root built from read-only binds of the system directories and the interpreter/toolchain
prefixes, plus size-capped tmpfs mounts for the working directory (/sandbox, with /tmp and /dev/shm inside the
same cap) and the harness files (/judge). Each program is forked by the supervisor and, before exec, gets a new
session, resource limits (RLIMIT_CPU, RLIMIT_AS, RLIMIT_STACK, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, no core
files), drops to a per-session unprivileged uid (the checker of a function test runs under a second uid), sets
no_new_privs, and gets a scrubbed environment. CPU time (polled from /proc, RLIMIT_CPU as the backstop) decides
TIME_LIMIT; the wall-clock guard only ends programs that are not asking for CPU, so verdicts do not change with
machine load. When a step ends, `kill(-1)` from PID 1 removes every process of the session, daemons included, and
the namespace dies with its supervisor. Every layer is probed at start-up and reported (`Sandbox.isolation`,
`/health`, `qwq sandbox run --json`); a missing layer is logged as a warning, never dropped silently, and
`Sandbox(require=[...])` refuses to start without the layers a caller depends on.

Batches (batch.py): one session judges many programs in turn and is reset between them (no process survives,
/sandbox, /tmp, /dev/shm and /judge are emptied, /sandbox's owner, mode and extended attributes restored, System V
IPC removed); reset sessions wait in a small pool for the next batch. Function-test programs of a batch are forked
from per-session zygotes (zygote.py): warm root interpreters that never run candidate code nor see test data,
whose forks take the same steps as the exec path (new session, descriptors, rlimits, uid drop, no_new_privs) and
are adopted by the supervisor (PID 1), so limits, accounting and kills are unchanged. Programs of one batch share
the session's uid (as successive sessions on one slot always did) and the zygote's hash seed.

Covered: fork bombs (RLIMIT_NPROC of a uid no other session uses), memory bombs (address-space limit), CPU
burners and busy threads, sleeping forever, huge output (caps + truncation flags, the run is stopped), disk filling
(tmpfs caps, RLIMIT_FSIZE), reading the host's files (project, home, data and /etc/shadow are not in the private
root; shadow files are masked too), writing outside the working directory (read-only root), network access (empty
network namespace, loopback down), signalling or ptracing the supervisor, the host or other sessions (other uid,
other PID namespace), daemons that outlive the run, setuid escalation (no_new_privs), faking a function-test pass by
exiting early, patching builtins or returning always-equal objects (the candidate runs in a separate process from
the checker and only plain data crosses; see `harness.py`).

Not covered: kernel exploits (no seccomp filter; the kernel's whole syscall surface is reachable), side channels and
timing attacks, exhausting host memory through many concurrent sessions (tmpfs pages and each run's address space
are bounded per run, not globally; no memory cgroup is used), CPU starvation of the host beyond the pool size, and
reading files that are world-readable inside the read-only system directories. If the namespaces or the uid drop
are unavailable the corresponding protections are gone; the start-up report says which.
"""
from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from qwq.sandbox.languages import Language, get_language, python_prefixes, toolchain_dirs
from qwq.sandbox.protocol import ProtocolError, b64, recv_message, send_fd, send_message, unb64
from qwq.sandbox.verdicts import (COMPILE_LIMITS, Limits, RunResult, SandboxUnavailable, Verdict, classify,
                                  result_from_proc, sandbox_env)

__all__ = ["Verdict", "Limits", "RunResult", "Sandbox", "Session", "SessionError", "SandboxUnavailable",
           "default_sandbox", "classify", "COMPILE_LIMITS"]

log = logging.getLogger("qwq.sandbox")

LAYERS = ("mount_namespace", "pid_namespace", "net_namespace", "ipc_namespace", "uts_namespace", "private_root",
          "uid_drop", "no_new_privs", "subreaper", "rlimits")
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent.parent)
_BOOT = ("import sys; sys.path.insert(0, {parent!r}); from qwq.sandbox.forkserver import main; main()")


class SessionError(Exception):
    """The sandbox infrastructure failed during a session (reported to callers as SANDBOX_ERROR)."""


class Sandbox:
    """A pool of isolated sessions backed by one fork server. Thread-safe; start-up is lazy.

    `require`: layers that must be active (else SandboxUnavailable); `disable`: layers to switch off (tests of the
    fallback paths). `max_sessions` bounds concurrent sessions (each gets its own unprivileged uid).
    """

    def __init__(self, *, max_sessions: int = 32, require=(), disable=()):
        unknown = sorted(set(require) | set(disable) - set(LAYERS))
        if unknown:
            raise SandboxUnavailable(f"unknown isolation layer(s) {unknown} (known: {', '.join(LAYERS)})")
        if not 1 <= max_sessions <= 128:
            raise SandboxUnavailable(f"max_sessions must be in 1..128, got {max_sessions}")
        self.require, self.disable = tuple(require), tuple(disable)
        self.max_sessions = max_sessions
        # A random block of 256 uids far above any real account, so sandboxes of different host processes
        # practically never share a uid (a shared uid would share RLIMIT_NPROC).
        self._uid_base = 100_000 + secrets.randbelow(8_000_000) * 256
        self._free_slots = list(range(max_sessions))
        self._idle: list[Session] = []  # clean, reset sessions kept warm (with their zygotes) for the next batch
        self._idle_pid = os.getpid()  # a forked copy of this object must not use the parent's sessions
        self.max_idle = min(4, max_sessions // 2)
        self._slots_cond = threading.Condition()
        self._lock = threading.RLock()  # re-entered when a dead fork server is restarted mid-handover
        self._send_lock = threading.RLock()
        self._proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._root_dir: str | None = None
        self.layers: dict[str, dict] = {}

    # ------------------------------------------------------------ fork server
    def start(self) -> "Sandbox":
        with self._lock:
            if self._proc is None:
                self._start_locked(self.disable)
        return self

    def _spawn(self, disable) -> None:
        self._root_dir = tempfile.mkdtemp(prefix="qwq-sandbox-root-")
        host, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _BOOT.format(parent=_PACKAGE_PARENT), str(child.fileno())],
            pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"})  # nothing of the host's environment leaks inward
        child.close()
        config = {"root_dir": self._root_dir, "readonly_paths": sorted(set(python_prefixes()) | set(toolchain_dirs())),
                  "probe_uid": self._uid_base + 2 * self.max_sessions, "interpreter": sys.executable,
                  "disable": list(disable)}
        host.send(json.dumps(config).encode())
        host.settimeout(60)
        try:
            self.layers = json.loads(host.recv(1 << 20) or b"null")
        except (OSError, ValueError) as exc:
            raise SandboxUnavailable(f"the sandbox fork server did not start: {exc}") from None
        if not isinstance(self.layers, dict):
            raise SandboxUnavailable("the sandbox fork server exited during its isolation probes")
        host.settimeout(None)
        self._control = host

    def _stop_server(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        if self._root_dir is not None:
            try:
                os.rmdir(self._root_dir)
            except OSError:
                pass
            self._root_dir = None

    def _start_locked(self, disable) -> None:
        disable = tuple(disable)
        self._spawn(disable)
        failure = self._smoke_test()
        # Fallback chain, each step logged: a private root that cannot be built here, then a uid drop that
        # cannot reach the interpreter (e.g. it lives under a 0700 home and there is no private root to expose it).
        for layer in ("private_root", "uid_drop"):
            if not failure or not self.layers.get(layer, {}).get("active"):
                continue
            log.warning("sandbox: a trivial program fails with %s active (%s); retrying without it", layer, failure)
            self._stop_server()
            disable += (layer,)
            self._spawn(disable)
            self.layers[layer]["detail"] = f"disabled after a failed smoke test: {failure}"
            failure = self._smoke_test()
        if failure:
            self._stop_server()
            raise SandboxUnavailable(f"the sandbox cannot run a trivial program: {failure}")
        missing = [name for name in self.require if not self.layers.get(name, {}).get("active")]
        if missing:
            details = "; ".join(f"{n}: {self.layers.get(n, {}).get('detail', 'unknown')}" for n in missing)
            self._stop_server()
            raise SandboxUnavailable(f"required isolation layer(s) inactive: {details}")
        inactive = [n for n in LAYERS if not self.layers.get(n, {}).get("active")]
        if inactive:
            log.warning("sandbox: isolation layers INACTIVE: %s", ", ".join(
                f"{n} ({self.layers.get(n, {}).get('detail', '?')})" for n in inactive))

    def _smoke_test(self) -> str | None:
        try:
            with self._session_unstarted(disk_mb=8) as session:
                result = session.run_code("print(6 * 7)", get_language("python"), "", Limits(cpu_seconds=10))
        except (SessionError, OSError, ProtocolError) as exc:
            return str(exc)
        if result.verdict is not Verdict.OK or result.stdout.strip() != "42":
            return f"{result.verdict}: {result.message} {result.stderr[-500:]}".strip()
        return None

    @property
    def uid_range(self) -> range:
        """Every uid this sandbox's programs can run as (tests scan /proc with it for survivors)."""
        return range(self._uid_base, self._uid_base + 2 * self.max_sessions + 2)

    @property
    def isolation(self) -> dict:
        """{"layers": {name: {"active", "detail"}}, "active": [...], "inactive": [...]} (starts the sandbox)."""
        self.start()
        active = [n for n in LAYERS if self.layers.get(n, {}).get("active")]
        return {"layers": self.layers, "active": active, "inactive": [n for n in LAYERS if n not in active]}

    def _hand_over(self, remote: socket.socket) -> None:
        with self._send_lock:
            if self._control is None or (self._proc is not None and self._proc.poll() is not None):
                with self._lock:  # the fork server died: start a fresh one (its probes rerun)
                    self._stop_server()
                    self._start_locked(self.disable)
            send_fd(self._control, remote.fileno())

    # ------------------------------------------------------------ sessions
    def _acquire_slot(self) -> int:
        while True:
            with self._slots_cond:
                if self._free_slots:
                    return self._free_slots.pop()
                idle = self._idle.pop() if self._idle else None
                if idle is None:
                    self._slots_cond.wait()
                    continue
            idle.close()  # a warm idle session gives its slot to a new one

    def borrow_session(self, disk_mb: int = 128) -> "Session":
        """A warm idle session of this size (reset after its last program, zygotes running), else a new one."""
        with self._slots_cond:
            for index, session in enumerate(self._idle):
                if session.disk_mb == int(disk_mb) and os.getpid() == self._idle_pid:
                    return self._idle.pop(index)
        return self.session(disk_mb)

    def give_back(self, session: "Session", clean: bool) -> None:
        """Keep a session for reuse only if it is open and was reset after its last program; else close it."""
        if clean and not session.closed and os.getpid() == self._idle_pid:
            with self._slots_cond:
                if len(self._idle) < self.max_idle:
                    self._idle.append(session)
                    return
        session.close()

    def _release_slot(self, slot: int) -> None:
        with self._slots_cond:
            self._free_slots.append(slot)
            self._slots_cond.notify()

    def session(self, disk_mb: int = 128) -> "Session":
        self.start()
        return self._session_unstarted(disk_mb)

    def _session_unstarted(self, disk_mb: int) -> "Session":
        slot = self._acquire_slot()
        try:
            return Session(self, slot, self._uid_base + 2 * slot, disk_mb)
        except BaseException:
            self._release_slot(slot)
            raise

    def run(self, code: str, language: str = "python", stdin: str | bytes = "",
            limits: Limits | None = None) -> RunResult:
        lang = get_language(language)
        limits = limits or Limits()
        try:
            with self.session(disk_mb=limits.disk_mb) as session:
                return session.run_code(code, lang, stdin, limits)
        except (SessionError, ProtocolError, OSError) as exc:
            return RunResult.sandbox_error(f"sandbox failure: {exc}")

    def close(self) -> None:
        with self._slots_cond:
            idle, self._idle = self._idle, []
        for session in idle:
            session.close()
        with self._lock:
            self._stop_server()

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class Session:
    """One isolated environment (namespaces, private root, /sandbox and /judge) for a sequence of steps."""

    def __init__(self, sandbox: Sandbox, slot: int, uid: int, disk_mb: int):
        self.sandbox, self.slot, self.uid = sandbox, slot, uid
        self.sock, remote = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.launcher_pid: int | None = None
        self.closed = False
        self.disk_mb = int(disk_mb)
        self.prepared: set[str] = set()  # what judge.py set up in this session and a reset keeps (harness, zygotes)
        self.served = 0  # programs judged in this session so far (batch.py)
        try:
            sandbox._hand_over(remote)
            remote.close()
            self.sock.settimeout(60)
            send_message(self.sock, {"op": "open", "uid": uid, "disk_mb": int(disk_mb)})
            reply = self._expect("launcher")
            self.launcher_pid = int(reply["pid"])
            self.paths = self._expect("ready")["paths"]
        except (OSError, ProtocolError, SessionError) as exc:
            self._abort()
            raise SessionError(f"could not open a sandbox session: {exc}") from None

    def _expect(self, op: str) -> dict:
        reply = recv_message(self.sock)
        if reply.get("op") != op:
            raise SessionError(reply.get("error") or f"expected {op!r}, got {reply.get('op')!r}")
        return reply

    def _abort(self, kill: bool = True) -> None:
        if kill and self.launcher_pid is not None:
            try:
                os.kill(self.launcher_pid, signal.SIGKILL)  # the supervisor's parent-death signal ends the rest
            except OSError:
                pass
        self.sock.close()
        if not self.closed:
            self.closed = True
            self.sandbox._release_slot(self.slot)

    def write(self, files: dict, *, where: str = "sandbox", owner: str | None = None, mode: int = 0o644) -> None:
        payload = {}
        for name, data in files.items():
            raw = data.encode() if isinstance(data, str) else bytes(data)
            payload[name] = {"data": b64(raw), "mode": mode, **({"owner": owner} if owner else {})}
        self._call({"op": "write", "dir": where, "files": payload}, "written", 60)

    def read(self, names: list[str]) -> dict[str, bytes]:
        """Files the program left in /sandbox (missing names are skipped)."""
        reply = self._call({"op": "read", "names": list(names)}, "read", 60)
        return {name: unb64(data) for name, data in reply["files"].items()}

    def start_zygotes(self, argvs: list[list[str]]) -> list[int]:
        """Warm interpreters for programs whose argv starts with one of `argvs` (see zygote.py); their pids (empty
        when this session cannot use zygotes: programs then start by fork + exec, with the same verdicts)."""
        reply = self._call({"op": "zygote", "argvs": [list(a) for a in argvs],
                            "env": sandbox_env(self.paths["sandbox"])}, "zygotes", 120)
        if reply.get("error"):
            log.debug("sandbox: zygotes not (all) started: %s", reply["error"])
        return [int(pid) for pid in reply.get("started", [])]

    def reset(self, keep_judge: tuple[str, ...] = ()) -> None:
        """Make the session as fresh for the next program as a new one: no process left, /sandbox and /tmp empty,
        /judge holding only `keep_judge`, no System V IPC objects."""
        self._call({"op": "reset", "keep_judge": list(keep_judge)}, "reset", 120)

    def _call(self, message: dict, expect: str, timeout: float) -> dict:
        try:
            self.sock.settimeout(timeout)
            send_message(self.sock, message)
            return self._expect(expect)
        except (OSError, ProtocolError, SessionError) as exc:
            self._abort()
            raise SessionError(f"sandbox session failed: {exc}") from None

    def step(self, procs: list[dict], *, pipes=(), report: bool = False, secret: bytes | None = None,
             main: int = 0) -> dict:
        """Run processes together (see supervisor.py); returns the supervisor's raw report."""
        timeout = max(p["limits"].get("wall_cap_seconds") or 60 for p in procs) + 30
        message = {"op": "run", "procs": procs, "pipes": list(pipes), "report": report, "main": main,
                   "secret": None if secret is None else b64(secret)}
        return self._call(message, "ran", timeout)

    def program(self, argv: list[str], limits: Limits, *, stdin: str | bytes = "", language: Language | None = None,
                role: str = "candidate", cwd: str = "sandbox") -> dict:
        raw_stdin = stdin.encode() if isinstance(stdin, str) else bytes(stdin)
        return {"role": role, "argv": list(argv), "env": sandbox_env(self.paths["sandbox"]), "cwd": cwd,
                "limits": limits.to_wire(language), "stdin": b64(raw_stdin) if raw_stdin else None}

    def run_argv(self, argv: list[str], limits: Limits, stdin: str | bytes = "",
                 language: Language | None = None) -> RunResult:
        report = self.step([self.program(argv, limits, stdin=stdin, language=language)])
        return result_from_proc(report["procs"][0], limits)

    def compile(self, language: Language, limits: Limits | None = None) -> RunResult | None:
        """Compile the source already written to /sandbox; None for interpreted languages."""
        if language.compile_argv is None:
            return None
        result = self.run_argv(list(language.compile_argv), limits or COMPILE_LIMITS)
        if result.verdict not in (Verdict.OK, Verdict.SANDBOX_ERROR):
            result.message = f"compilation failed ({result.verdict.value}: {result.message})"
            result.verdict = Verdict.COMPILE_ERROR
        return result

    def run_code(self, code: str, language: Language, stdin: str | bytes, limits: Limits,
                 compile_limits: Limits | None = None) -> RunResult:
        self.write({language.source_name: code})
        compiled = self.compile(language, compile_limits)
        if compiled is not None and not compiled.ok:
            return RunResult(compiled.verdict, stdout=compiled.stdout, stderr=compiled.stderr,
                             exit_code=compiled.exit_code, signal=compiled.signal, message=compiled.message,
                             cpu_seconds=compiled.cpu_seconds, wall_seconds=compiled.wall_seconds,
                             compile=compiled)
        result = self.run_argv(language.run_command(limits.memory_mb), limits, stdin, language)
        result.compile = compiled
        return result

    def close(self) -> None:
        if self.closed:
            return
        try:
            self.sock.settimeout(30)
            send_message(self.sock, {"op": "close"})
            while recv_message(self.sock).get("op") != "closed":
                pass
            clean = True
        except (OSError, ProtocolError):
            clean = False
        # after a clean close every process of the session is dead and the launcher is exiting: its pid may be
        # reused soon, so it must not be signalled
        self._abort(kill=not clean)

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_DEFAULT: Sandbox | None = None
_DEFAULT_LOCK = threading.Lock()


def default_sandbox() -> Sandbox:
    """The process-wide sandbox (started on first use, closed at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = Sandbox()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
