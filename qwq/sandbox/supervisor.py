"""The per-session supervisor: PID 1 of the session's namespaces (standard library only).

It owns the session's files, runs steps (one program, or a checker + candidate pair wired by pipes), captures
output with caps, enforces CPU time by polling /proc (RLIMIT_CPU is the backstop), guards wall time, and kills
every process of the step when the step ends. Being PID 1 of a fresh PID namespace, `kill(-1, SIGKILL)` reaches
exactly the session's processes and nothing else; without that namespace it falls back to uid / descendant scans.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import stat
import time

from qwq.sandbox import isolation as iso
from qwq.sandbox.protocol import ProtocolError, b64, recv_message, send_message, unb64
from qwq.sandbox.zygote import SPARE_NAME, Zygote, start_zygote

TICK_SECONDS = 0.02
REPORT_CAP_BYTES = 16 * 1024 * 1024
READ_CAP_BYTES = 16 * 1024 * 1024


class Supervisor:
    def __init__(self, sock: socket.socket, uid: int | None, paths: dict, pid_namespace: bool,
                 no_new_privs: bool):
        self.sock = sock
        self.uids = {"candidate": uid, "checker": None if uid is None else uid + 1}
        self.paths = paths
        self.pid_namespace = pid_namespace and os.getpid() == 1
        self.no_new_privs = no_new_privs
        self.rusage_by_pid: dict[int, tuple[int, object]] = {}
        self.accounted: set[int] = set()
        self.roots: dict[int, str] = {}
        self.zygotes: dict[int, Zygote] = {}  # pid -> zygote (warm interpreters; see zygote.py)
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        self.wake_r = wake_r
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)

    # ------------------------------------------------------------ command loop
    def serve(self) -> None:
        while True:
            try:
                message = recv_message(self.sock)
            except (ProtocolError, OSError):
                break
            op = message.get("op")
            try:
                if op == "write":
                    reply = self.write(message)
                elif op == "read":
                    reply = self.read(message)
                elif op == "run":
                    reply = self.run(message)
                elif op == "zygote":
                    reply = self.start_zygotes(message)
                elif op == "reset":
                    reply = self.reset(message)
                elif op == "close":
                    break
                else:
                    reply = {"op": "error", "error": f"unknown op {op!r}"}
            except Exception as exc:  # a supervisor bug must surface as SANDBOX_ERROR, never as a verdict
                reply = {"op": "error", "error": f"{type(exc).__name__}: {exc}"}
                self.kill_all()
            try:
                send_message(self.sock, reply)
            except OSError:
                break
        for zygote in self.zygotes.values():
            zygote.close()
        self.zygotes.clear()
        self.kill_all()
        try:
            send_message(self.sock, {"op": "closed"})
        except OSError:
            pass

    # ------------------------------------------------------------ files
    def write(self, message: dict) -> dict:
        where = message.get("dir", "sandbox")
        base = self.paths[where]
        for name, spec in message["files"].items():
            if not name or "/" in name or name in (".", ".."):
                return {"op": "error", "error": f"file name {name!r} must be a plain name"}
            owner = spec.get("owner", "candidate" if where == "sandbox" else "root")
            uid = self.uids.get(owner) if owner != "root" else 0
            path = os.path.join(base, name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, unb64(spec.get("data")))
                if uid is not None and os.geteuid() == 0:
                    os.fchown(fd, uid, uid)
                os.fchmod(fd, int(spec.get("mode", 0o644)))
            finally:
                os.close(fd)
        return {"op": "written"}

    def read(self, message: dict) -> dict:
        """Regular files of /sandbox by plain name (never following links), at most READ_CAP_BYTES in all."""
        found, total = {}, 0
        for name in message.get("names", []):
            if not name or "/" in name or name in (".", ".."):
                return {"op": "error", "error": f"file name {name!r} must be a plain name"}
            try:
                fd = os.open(os.path.join(self.paths["sandbox"], name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            except OSError:
                continue
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    continue
                data = os.read(fd, max(0, READ_CAP_BYTES - total))
            finally:
                os.close(fd)
            total += len(data)
            found[name] = b64(data)
        return {"op": "read", "files": found}

    # ------------------------------------------------------------ processes of this session
    def session_pids(self) -> list[int]:
        """Every process the session's programs may have left (the supervisor and its zygotes excepted)."""
        me = os.getpid()
        if self.pid_namespace:
            pids = [pid for pid in iso.list_pids() if pid != me and pid not in self.zygotes]
            return [pid for pid in pids if not self._is_spare(pid)] if self.zygotes else pids
        pids = iso.list_pids()
        wanted = {uid for uid in self.uids.values() if uid is not None}
        if wanted:
            return [pid for pid in pids if pid != me and iso.process_uid(pid) in wanted]
        children: dict[int, list[int]] = {}
        for pid in pids:
            parent = iso.process_ppid(pid)
            if parent is not None:
                children.setdefault(parent, []).append(pid)
        found, frontier = [], [me]
        while frontier:
            kids = children.get(frontier.pop(), [])
            found.extend(kids)
            frontier.extend(kids)
        return found

    @staticmethod
    def _is_spare(pid: int) -> bool:
        """A zygote's spare, waiting for its program (root-owned, which no program process can be)."""
        if iso.process_uid(pid) != 0:
            return False
        try:
            with open(f"/proc/{pid}/comm", "rb") as handle:
                return handle.read().strip() == SPARE_NAME
        except OSError:
            return False

    def role_of(self, pid: int, roots: dict[int, str]) -> str:
        if pid in roots:
            return roots[pid]
        uid = iso.process_uid(pid)
        for role, role_uid in self.uids.items():
            if role_uid is not None and uid == role_uid:
                return role
        return "candidate"

    def kill_pids(self, pids) -> None:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def kill_all(self) -> None:
        """Kill and reap every process of the session (PID 1 of a fresh namespace: kill(-1) is exactly that)."""
        if self.zygotes:
            self._kill_all_but_zygotes()
            return
        for _ in range(50):
            if self.pid_namespace:
                try:
                    os.kill(-1, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            else:
                self.kill_pids(self.session_pids())
            self.reap(block=True)
            if not self.session_pids():
                return

    def _kill_all_but_zygotes(self) -> None:
        """kill(-1) would take the zygotes too: kill each program uid in one kernel pass (a helper that becomes
        that uid and calls kill(-1), which a fork bomb cannot outrun), then whatever is left by pid."""
        for attempt in range(200):
            pids = self.session_pids()
            if not pids:
                return
            if attempt or len(pids) > 2:
                for role in self.uids:
                    self._kill_uid(role)
            self.kill_pids(pids)
            for pid in pids:
                self._wait_for(pid)
            self.reap()
            if attempt >= 3:
                time.sleep(0.001)  # dying processes whose zombies are not ours yet (their parents are dying too)

    def _wait_for(self, pid: int) -> None:
        try:
            done, status, usage = os.wait4(pid, 0)
        except (ChildProcessError, InterruptedError):
            return
        self._record(done, status, usage)

    def _record(self, pid: int, status: int, usage) -> None:
        zygote = self.zygotes.pop(pid, None)
        if zygote is not None:  # a zygote died: its CPU is nobody's; later programs go through exec
            zygote.close()
            return
        self.rusage_by_pid[pid] = (status, usage)

    def reap(self, block: bool = False) -> None:
        while True:
            try:
                pid, status, usage = os.wait4(-1, 0 if block else os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._record(pid, status, usage)

    # ------------------------------------------------------------ one step
    def run(self, message: dict) -> dict:
        self.rusage_by_pid.clear()
        self.accounted: set[int] = set()
        ends: dict[str, int] = {}
        for name in message.get("pipes", []):
            ends[name + ".r"], ends[name + ".w"] = os.pipe()
        report_r = None
        if message.get("report"):
            report_r, ends["report.w"] = os.pipe()
        if message.get("secret") is not None:
            ends["secret.r"], secret_w = os.pipe()
            os.write(secret_w, unb64(message["secret"]))
            os.close(secret_w)
        procs: list[dict] = []
        for spec in message["procs"]:  # a checker learns its candidate's pid from us, never from the candidate
            env = dict(spec.get("env", {}))
            if spec.get("peer") is not None:
                env["QWQ_PEER_PID"] = str(procs[int(spec["peer"])]["pid"])
            procs.append(self._spawn(dict(spec, env=env), ends))
        for fd in ends.values():
            os.close(fd)
        self.roots = {p["pid"]: p["role"] for p in procs}
        readers = {p["out_r"]: (p, "stdout") for p in procs}
        readers.update({p["err_r"]: (p, "stderr") for p in procs})
        report = bytearray()
        if report_r is not None:
            readers[report_r] = (None, "report")
        for fd in readers:
            os.set_blocking(fd, False)
        main = procs[int(message.get("main", 0))]
        closed: dict[int, tuple] = {}
        start = time.monotonic()
        next_poll = start + TICK_SECONDS
        cpu_done: dict[str, float] = {}
        idle_checks: dict[str, int] = {}
        while main["status"] is None:
            timeout = max(0.0, next_poll - time.monotonic())
            ready, _, _ = select.select(list(readers) + [self.wake_r], [], [], timeout)
            for fd in ready:
                if fd == self.wake_r:
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                elif not self._read_into(fd, readers, report):
                    closed[fd] = readers.pop(fd)  # EOF: select would report it ready forever
            self._collect(procs, cpu_done)
            now = time.monotonic()
            if main["status"] is None and now >= next_poll:
                self._enforce(procs, cpu_done, idle_checks, now - start)
                next_poll = now + TICK_SECONDS
        wall = time.monotonic() - start
        for p in procs:
            if p["status"] is None and p["killed"] is None:
                p["killed"] = "step_end"
        self.kill_all()  # no writer survives, so draining below ends at EOF
        self._collect(procs, cpu_done)
        for fd in list(readers):
            self._read_into(fd, readers, report, drain=True)
        for fd in list(readers) + list(closed):
            os.close(fd)
        return {"op": "ran", "wall_seconds": wall, "report": b64(bytes(report)),
                "procs": [self._result(p, wall, cpu_done.get(p["role"], 0.0)) for p in procs]}

    def _spawn(self, spec: dict, ends: dict[str, int]) -> dict:
        stdin = spec.get("stdin")
        if stdin:
            stdin_fd = os.memfd_create("stdin", os.MFD_CLOEXEC)
            os.write(stdin_fd, unb64(stdin))
            os.lseek(stdin_fd, 0, os.SEEK_SET)
        else:
            stdin_fd = os.open("/dev/null", os.O_RDONLY | os.O_CLOEXEC)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        error_r, error_w = os.pipe()
        fd_map = {0: stdin_fd, 1: out_w, 2: err_w}
        for target, name in spec.get("fds", {}).items():
            fd_map[int(target)] = ends[name]
        role = spec.get("role", "candidate")
        cwd = self.paths["judge"] if spec.get("cwd") == "judge" else self.paths["sandbox"]
        pid = self._spawn_warm(dict(spec, cwd=cwd), fd_map, error_w, self.uids.get(role))
        if pid is None:
            pid = os.fork()
            if pid == 0:
                os.close(out_r)
                os.close(err_r)
                os.close(error_r)
                iso.child_exec(spec["argv"], spec.get("env", {}), cwd, fd_map, spec["limits"], self.uids.get(role),
                               self.no_new_privs, error_w)
        for fd in (stdin_fd, out_w, err_w, error_w):
            os.close(fd)
        limits = spec["limits"]
        return {"pid": pid, "role": role, "limits": limits, "status": None, "usage": None, "killed": None,
                "stdout": bytearray(), "stderr": bytearray(), "stdout_truncated": False, "stderr_truncated": False,
                "out_r": out_r, "err_r": err_r, "error_r": error_r, "cpu_seen": 0.0}

    def _spawn_warm(self, spec: dict, fd_map: dict[int, int], error_w: int, uid: int | None) -> int | None:
        """Fork the program from a zygote started with the same command prefix; None: use fork + exec."""
        for zygote in self.zygotes.values():
            if zygote.serves(spec["argv"]):
                try:
                    return zygote.spawn(spec, fd_map, error_w, uid, self.no_new_privs)
                except OSError:
                    return None  # this program is exec'd (and every later one if the zygote is gone)
        return None

    # ------------------------------------------------------------ batches: zygotes and cleaning between programs
    def start_zygotes(self, message: dict) -> dict:
        """Start warm interpreters for these command prefixes (only with a PID namespace and per-role uids, which
        is what lets the supervisor adopt, account and kill the programs they fork)."""
        if not (self.pid_namespace and self.uids["candidate"] is not None and os.geteuid() == 0):
            return {"op": "zygotes", "started": [], "error": "zygotes need the PID namespace and the uid drop"}
        started, errors = [], []
        for argv in message.get("argvs", []):
            try:
                zygote = start_zygote(list(argv), dict(message.get("env", {})), self.paths["judge"],
                                      self.no_new_privs)
            except OSError as exc:
                errors.append(str(exc))
                continue
            self.zygotes[zygote.pid] = zygote
            started.append(zygote.pid)
        return {"op": "zygotes", "started": started, "error": "; ".join(errors)}

    def reset(self, message: dict) -> dict:
        """Between two programs of a batch: no process of the last one survives, /sandbox is empty again (owned
        by the candidate uid, mode 0755, no extended attributes; /tmp and /dev/shm inside it emptied), /judge keeps
        only `keep_judge`, and no System V IPC object is left in the session's IPC namespace."""
        self.kill_all()
        work = self.paths["sandbox"]
        inner = tuple(name for name in (".tmp", ".shm") if os.path.isdir(os.path.join(work, name))
                      and not os.path.islink(os.path.join(work, name)))
        iso.clear_directory(work, keep=inner)
        for name in inner:
            iso.clear_directory(os.path.join(work, name))
            os.chmod(os.path.join(work, name), 0o1777)
        uid = self.uids["candidate"]
        if uid is not None and os.geteuid() == 0:
            os.chown(work, uid, uid)
        os.chmod(work, 0o755)
        for name in os.listxattr(work):  # the candidate owns /sandbox: user xattrs and ACLs on it would carry over
            os.removexattr(work, name)
        iso.clear_directory(self.paths["judge"], keep=tuple(message.get("keep_judge", ())))
        iso.remove_sysv_ipc()
        return {"op": "reset"}

    def _read_into(self, fd: int, readers: dict, report: bytearray, drain: bool = False) -> bool:
        """Read what is available (everything when draining); False once the pipe reached EOF."""
        proc, stream = readers[fd]
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except (BlockingIOError, InterruptedError):
                return True
            if not chunk:
                return False
            if proc is None:
                report.extend(chunk[: max(0, REPORT_CAP_BYTES - len(report))])
            else:
                cap = int(proc["limits"].get(f"{stream}_bytes", 1 << 20))
                buffer = proc[stream]
                room = cap - len(buffer)
                buffer.extend(chunk[: max(0, room)])
                if len(chunk) > room and not proc[f"{stream}_truncated"]:
                    proc[f"{stream}_truncated"] = True
                    if not drain and proc["killed"] is None:
                        proc["killed"] = "output"
                        self._kill_role(proc["role"])
            if not drain:
                return True

    def _kill_uid(self, role: str) -> None:
        uid = self.uids.get(role)
        if uid is not None and os.geteuid() == 0:
            pid = os.fork()
            if pid == 0:
                try:
                    os.setresgid(uid, uid, uid)
                    os.setresuid(uid, uid, uid)
                    for _ in range(3):
                        os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)

    def _kill_role(self, role: str) -> None:
        """Kill every process of one role. With per-role uids a helper that becomes that uid and calls kill(-1)
        hits them all in one kernel pass, which a fork bomb cannot outrun; otherwise scan and kill."""
        self._kill_uid(role)
        for _ in range(20):
            victims = [p for p in self.session_pids() if self.role_of(p, self.roots) == role]
            if not victims:
                return
            self.kill_pids(victims)

    def _collect(self, procs: list[dict], cpu_done: dict[str, float]) -> None:
        """Reap exited processes; their CPU time (with their reaped descendants') joins their role's total."""
        self.reap()
        for pid in set(self.rusage_by_pid) - self.accounted:
            self.accounted.add(pid)
            status, usage = self.rusage_by_pid[pid]
            for p in procs:
                if p["pid"] == pid:
                    p["status"], p["usage"] = status, usage
            role = self.roots.get(pid, "candidate")  # orphans adopted by the supervisor count for the candidate
            cpu_done[role] = cpu_done.get(role, 0.0) + usage.ru_utime + usage.ru_stime

    def _enforce(self, procs, cpu_done, idle_checks, elapsed: float) -> None:
        live: dict[str, list[tuple[int, str, int]]] = {}
        for pid in self.session_pids():
            stat = iso.process_stat(pid)
            if stat is not None and stat[0] != "Z":
                live.setdefault(self.role_of(pid, self.roots), []).append((pid, stat[0], stat[1] + stat[2]))
        for p in procs:
            if p["status"] is not None or p["killed"] is not None:
                continue
            role, limits = p["role"], p["limits"]
            entries = live.get(role, [])
            cpu = cpu_done.get(role, 0.0) + sum(ticks for _, _, ticks in entries) / iso.CLOCK_TICKS
            p["cpu_seen"] = max(p["cpu_seen"], cpu)
            cpu_limit = limits.get("cpu_seconds")
            if cpu_limit is not None and cpu > cpu_limit:
                p["killed"] = "cpu"
                self._kill_role(role)
                continue
            wall_limit = limits.get("wall_seconds")
            if wall_limit is None or elapsed <= wall_limit:
                continue
            # CPU time decides TIME_LIMIT: a program still asking for CPU when the wall guard fires is starved by
            # load, not idle, so it may run on (to its CPU limit) until the hard cap.
            runnable = any(state == "R" or iso.process_runnable(pid) for pid, state, _ in entries)
            idle_checks[role] = 0 if runnable else idle_checks.get(role, 0) + 1
            if idle_checks[role] >= 2 or elapsed > limits.get("wall_cap_seconds", 4 * wall_limit):
                p["killed"] = "wall"
                self._kill_role(role)

    def _result(self, p: dict, wall: float, role_cpu: float) -> dict:
        try:
            error = os.read(p["error_r"], 8192)
        except OSError:
            error = b""
        os.close(p["error_r"])
        status, usage = p["status"], p["usage"]
        exit_code = sig = None
        if status is not None:
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
            else:
                exit_code = os.WEXITSTATUS(status)
        own = (usage.ru_utime + usage.ru_stime) if usage is not None else 0.0
        return {"role": p["role"], "exit_code": exit_code, "signal": sig, "killed": p["killed"],
                "cpu_seconds": max(own, role_cpu, p["cpu_seen"]),
                "peak_memory_mb": (usage.ru_maxrss / 1024.0) if usage is not None else 0.0,
                "wall_seconds": wall, "exec_error": error.decode(errors="replace") or None,
                "stdout": b64(bytes(p["stdout"])), "stderr": b64(bytes(p["stderr"])),
                "stdout_truncated": p["stdout_truncated"], "stderr_truncated": p["stderr_truncated"]}
