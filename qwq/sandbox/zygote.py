"""Warm interpreters that fork one fresh process per program, so a batch does not pay Python's start-up each time.

A session that judges many function-test programs starts two zygotes next to its supervisor, with exactly the
command lines the programs would have had: `python -I /judge/harness.py zygote` (candidates) and
`python -I -S /judge/harness.py zygote` (checkers). A zygote runs as root but never runs candidate code and never
sees test data, expected values or nonces: it only learns argv, environment, limits and descriptors. For each
program the supervisor sends it one request, which goes to a spare: a process the zygote forked twice ahead of
time (so it is adopted by the supervisor, PID 1 of the session's PID namespace, which reaps it and reads its CPU
time like any other child), root-owned and named "qwq-spare" while it waits (the supervisor's sweeps skip exactly
those; a program can never be root). On its request the spare takes its name back and does what the exec path's child does between fork and exec (new session, descriptors, working directory,
rlimits, uid drop, no_new_privs; see isolation.prepare_child) and returns into harness.py's `__main__` code as if
the interpreter had just started with its own argv. So every program is still a fresh process with its own limits
and uid; what it shares with its siblings is only the zygote's clean start-up state (imported modules, the hash
seed). The supervisor uses a zygote only when the PID namespace and the uid drop are active, and falls back to
fork + exec whenever a zygote cannot serve a request.

Standard library only: the supervisor side runs in the fork server, the zygote side is copied into /judge.
"""

from __future__ import annotations

import json
import os
import socket
import sys

MAX_REQUEST_BYTES = 1 << 20
MAX_FDS = 32


# ---------------------------------------------------------------- the zygote (inside the sandbox)

def _load_isolation():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_qwq_isolation", os.path.join(os.path.dirname(__file__),
                                                                                  "isolation.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SPARE_NAME = b"qwq-spare"  # /proc/PID/comm of a root-owned spare: the supervisor leaves those alone


def serve(control_fd: int = 3) -> list[str]:
    """The zygote's loop. Returns only inside a forked program: the program's arguments after the script path.

    One spare is kept forked ahead (already adopted by the supervisor, waiting for its request), so a request is
    answered without forking while the supervisor waits; the next spare is forked while it runs the step.
    """
    iso = _load_isolation()
    try:
        os.nice(-10)  # like the supervisor: a fork on request must not queue behind the host's busy processes
    except OSError:
        pass
    control = socket.socket(fileno=control_fd)
    import gc

    gc.freeze()  # start-up objects move to a generation the collector never scans: programs copy fewer pages
    prefix = list(sys.orig_argv[:-1])  # our own command without the final "zygote"
    with open("/proc/self/comm", "rb") as handle:
        own_name = handle.read().strip()
    control.send(json.dumps({"ready": os.getpid()}).encode())
    spare = None
    while True:
        if spare is None:
            try:
                spare = _fork_spare(control, iso, prefix, own_name)
            except OSError:  # e.g. killed half-made by the supervisor's end-of-step sweep: fork on request
                spare = None
            if isinstance(spare, list):  # we are that spare, turned into the program
                return spare
        try:
            data, fds, _flags, _addr = socket.recv_fds(control, MAX_REQUEST_BYTES, MAX_FDS)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)  # the supervisor closed the channel
        try:
            request = json.loads(data)
            argv = [str(a) for a in request["argv"]]
            if argv[:len(prefix)] != prefix or len(fds) != len(request["targets"]) + 1:
                raise ValueError(f"request does not match this zygote: {argv[:len(prefix) + 1]}")
            for attempt in range(2):
                if spare is None:  # the supervisor waits for our reply now: nothing kills it half-made
                    spare = _fork_spare(control, iso, prefix, own_name)
                    if isinstance(spare, list):
                        return spare
                pid, channel = spare
                spare = None
                try:
                    socket.send_fds(channel, [data], fds)
                    break
                except OSError:  # that spare died: fork another one once
                    if attempt:
                        raise
                finally:
                    channel.close()
            reply = {"pid": pid}
        except Exception as exc:  # noqa: BLE001 - reported to the supervisor, which falls back to exec
            reply = {"error": f"{type(exc).__name__}: {exc}"}
        for fd in fds:
            os.close(fd)
        control.send(json.dumps(reply).encode())


def _fork_spare(control: socket.socket, iso, prefix: list[str], own_name: bytes):
    """Fork twice so the spare is orphaned to PID 1 (the supervisor, which then reaps and accounts it like any
    program); (pid, channel) here, the program's arguments inside the spare once its request came. Until the
    spare has named itself it is an ordinary root process to the supervisor, which may kill it: then OSError."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # never returns into the zygote's loop
        try:
            os.close(read_end)
            program = os.fork()
        except BaseException:  # noqa: BLE001
            os._exit(1)
        if program == 0:
            return _wait_as_spare(control, ours, theirs, write_end, iso, prefix, own_name)
        os._exit(0)
    os.close(write_end)
    theirs.close()
    text = b""
    while True:
        chunk = os.read(read_end, 64)
        if not chunk:
            break
        text += chunk
    os.close(read_end)
    os.waitpid(middle, 0)
    if not text:
        ours.close()
        raise OSError("the spare could not be forked")
    return int(text), ours


def _wait_as_spare(control, ours, theirs, ready_fd: int, iso, prefix: list[str], own_name: bytes) -> list[str]:
    try:
        control.close()  # our copies only; closed now, before their numbers can be reused
        ours.close()
        with open("/proc/self/comm", "wb") as handle:
            handle.write(SPARE_NAME)
        os.write(ready_fd, str(os.getpid()).encode())  # named first: the supervisor's sweeps now pass us by
        os.close(ready_fd)
        data, fds, _flags, _addr = socket.recv_fds(theirs, MAX_REQUEST_BYTES, MAX_FDS)
        theirs.close()
        if not data:
            os._exit(0)
        request = json.loads(data)
        argv = [str(a) for a in request["argv"]]
        with open("/proc/self/comm", "wb") as handle:
            handle.write(own_name)
    except BaseException:  # noqa: BLE001 - a spare must never return into the zygote's loop
        os._exit(1)
    return _become(iso, request, argv, fds, prefix)


def _become(iso, request: dict, argv: list[str], fds: list[int], prefix: list[str]) -> list[str]:
    error_fd, sources = fds[0], fds[1:]
    fd_map = {int(target): fd for target, fd in zip(request["targets"], sources)}
    try:
        error_fd = iso.prepare_child(fd_map, request["cwd"], request["limits"], request.get("uid"),
                                     bool(request.get("no_new_privs")), error_fd, before_exec=False)
        os.environ.clear()
        os.environ.update({str(k): str(v) for k, v in request.get("env", {}).items()})
        sys.orig_argv[:] = argv
        sys.argv[:] = argv[len(prefix) - 1:]
    except BaseException as exc:  # noqa: BLE001 - same report as a failed exec
        try:
            os.write(error_fd, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(127)
    os.close(error_fd)  # end of file on the error pipe: the program started
    return sys.argv[1:]


# ---------------------------------------------------------------- the supervisor's handle on one zygote

class Zygote:
    """A running zygote as the supervisor sees it: its pid, its command prefix and its request channel."""

    def __init__(self, pid: int, prefix: list[str], channel: socket.socket, diagnostics_fd: int):
        self.pid, self.prefix, self.channel, self.diagnostics_fd = pid, prefix, channel, diagnostics_fd
        self.alive = True

    def serves(self, argv: list[str]) -> bool:
        return self.alive and len(argv) > len(self.prefix) and list(argv[:len(self.prefix)]) == self.prefix

    def spawn(self, spec: dict, fd_map: dict[int, int], error_fd: int, uid: int | None,
              no_new_privs: bool) -> int:
        """Fork the program described by `spec`; its pid, or OSError (the caller falls back to exec)."""
        targets = sorted(fd_map)
        request = {"argv": list(spec["argv"]), "env": spec.get("env", {}), "cwd": spec["cwd"],
                   "limits": spec["limits"], "uid": uid, "no_new_privs": no_new_privs, "targets": targets}
        try:
            self.channel.settimeout(10)
            socket.send_fds(self.channel, [json.dumps(request).encode()], [error_fd] + [fd_map[t] for t in targets])
            data = self.channel.recv(MAX_REQUEST_BYTES)
            reply = json.loads(data) if data else None
        except (OSError, ValueError):
            reply = None
        if reply is None:  # the channel is broken: this zygote serves no more programs
            self.alive = False
            raise OSError(f"zygote {self.pid} stopped answering {self.diagnostics()}".strip())
        if "pid" not in reply:  # this one program goes through exec
            raise OSError(f"zygote {self.pid}: {reply.get('error')}")
        return int(reply["pid"])

    def diagnostics(self) -> str:
        try:
            return os.read(self.diagnostics_fd, 4000).decode(errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        self.alive = False
        self.channel.close()
        os.close(self.diagnostics_fd)


def start_zygote(argv: list[str], env: dict, cwd: str, no_new_privs: bool) -> Zygote:
    """Fork + exec `argv + ["zygote"]` as root inside the session and wait for it to say it is ready."""
    from qwq.sandbox import isolation as iso

    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    diag_r, diag_w = os.pipe()
    null = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
    error_r, error_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        ours.close()
        os.close(diag_r)
        os.close(error_r)
        iso.child_exec(list(argv) + ["zygote"], env, cwd, {0: null, 1: diag_w, 2: diag_w, 3: theirs.fileno()},
                       {"stack_mb": 64, "max_processes": 4096, "file_size_mb": 64, "open_files": 4096}, None,
                       no_new_privs, error_w)
    for fd in (null, diag_w, error_w):
        os.close(fd)
    theirs.close()
    os.set_blocking(diag_r, False)
    zygote = Zygote(pid, list(argv), ours, diag_r)
    try:
        with os.fdopen(error_r, "rb") as handle:
            failure = handle.read().decode(errors="replace")
        if failure:
            raise OSError(f"could not start the zygote: {failure}")
        ours.settimeout(60)
        hello = json.loads(ours.recv(MAX_REQUEST_BYTES) or b"{}")
        if hello.get("ready") != pid:
            raise OSError(f"the zygote did not start: {zygote.diagnostics()[-2000:]}")
    except (OSError, ValueError):
        zygote.close()
        raise
    return zygote
