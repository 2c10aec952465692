"""Kernel isolation primitives for the sandbox's fork server: namespaces, a private root, limits, privilege drop.

Standard library + ctypes only (the fork server runs it under `python -I -S`). Every layer is probed once at
start-up (`probe_layers`), so the sandbox reports what actually protects a run instead of assuming it.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import math
import os
import platform
import resource
import signal

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.unshare.argtypes = [ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
NAMESPACES = {"mount": CLONE_NEWNS, "pid": CLONE_NEWPID, "net": CLONE_NEWNET, "ipc": CLONE_NEWIPC,
              "uts": CLONE_NEWUTS}
_FLAG_NAMES = {"mount": "CLONE_NEWNS", "pid": "CLONE_NEWPID", "net": "CLONE_NEWNET", "ipc": "CLONE_NEWIPC",
               "uts": "CLONE_NEWUTS"}

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 32, 4096, 8192, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 1, 4, 36, 38
_PIVOT_ROOT_SYSCALL = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}

# Directories a program needs to run; everything else on the host (project, home, data) stays invisible.
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc")
DEVICE_NODES = ("null", "zero", "full", "random", "urandom")
MASKED_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-", "/etc/sudoers")
_PARK_FD = 1000  # descriptors are staged here while the child rewires 0..N
SANDBOX_DIR = "/sandbox"  # the candidate's working directory (size-capped tmpfs)
JUDGE_DIR = "/judge"  # test harness files: readable by the checker only


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl {option}")


def pivot_root(new_root: str) -> None:
    """Make `new_root` the root and detach the old one (pivot_root(".", ".") idiom; chroot if the syscall is missing)."""
    os.chdir(new_root)
    number = _PIVOT_ROOT_SYSCALL.get(platform.machine())
    if number is not None and _libc.syscall(number, b".", b".") == 0:
        _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    else:  # initramfs roots and unknown architectures: move the mount over / and chroot into it
        mount(new_root, "/", None, MS_MOVE)
        os.chroot(".")
    os.chdir("/")


def _bind_readonly(source: str, target: str) -> None:
    os.makedirs(target, exist_ok=True)
    mount(source, target, None, MS_BIND | MS_REC)
    mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _covered(path: str, taken: list[str]) -> bool:
    return any(path == t or path.startswith(t.rstrip("/") + "/") for t in taken)


def build_private_root(root_dir: str, readonly_paths: list[str], disk_mb: int, candidate_uid: int,
                       checker_uid: int, mount_proc: bool) -> None:
    """Assemble a minimal root in `root_dir` (inside a fresh mount namespace) and pivot into it.

    Read-only: system dirs and the interpreter/toolchain prefixes. Writable: /sandbox (owned by the candidate),
    with /tmp and /dev/shm bound from inside it so one size cap bounds all writes. /judge belongs to root and holds
    per-file-owned harness files. /proc is a fresh mount of the new PID namespace.
    """
    mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount may propagate back to the host
    mount("tmpfs", root_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=2m,mode=0755")
    taken: list[str] = []
    for path in list(SYSTEM_DIRS) + sorted(set(readonly_paths), key=len):
        if _covered(path, taken) or not os.path.lexists(path):
            continue
        target = root_dir + path
        if os.path.islink(path):  # merged /usr: /bin -> usr/bin
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(path), target)
        elif os.path.isdir(path):
            _bind_readonly(path, target)
        taken.append(path)
    for secret in MASKED_FILES:
        if os.path.isfile(secret) and not os.path.islink(secret):
            mount("/dev/null", root_dir + secret, None, MS_BIND)
    dev = root_dir + "/dev"
    os.makedirs(dev, exist_ok=True)
    mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_NOEXEC, "size=64k,mode=0755")
    for node in DEVICE_NODES:  # bound without MS_NODEV (a nodev node cannot be opened) and writable (/dev/null)
        open(f"{dev}/{node}", "w").close()
        mount("/dev/" + node, f"{dev}/{node}", None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2")):
        os.symlink(target, f"{dev}/{name}")
    work = root_dir + SANDBOX_DIR
    os.makedirs(work)
    mount("tmpfs", work, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(disk_mb)}m,mode=0755")
    os.chown(work, candidate_uid, candidate_uid)
    for shared, inner in (("/tmp", ".tmp"), ("/dev/shm", ".shm")):
        os.mkdir(f"{work}/{inner}")
        os.chmod(f"{work}/{inner}", 0o1777)
        os.makedirs(root_dir + shared, exist_ok=True)
        mount(f"{work}/{inner}", root_dir + shared, None, MS_BIND)
    judge = root_dir + JUDGE_DIR
    os.makedirs(judge)
    mount("tmpfs", judge, "tmpfs", MS_NOSUID | MS_NODEV, f"size={int(disk_mb)}m,mode=0755")
    os.makedirs(root_dir + "/proc")
    if mount_proc:
        mount("proc", root_dir + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount(None, root_dir, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    pivot_root(root_dir)
    del checker_uid  # ownership of /judge files is set per file when they are written


# ---------------------------------------------------------------- the child, between fork and exec

def apply_rlimits(limits: dict) -> None:
    """Set the run's resource limits (called as root, before dropping privileges, so they cannot be raised)."""
    mib = 1024 * 1024

    def setlim(which: int, value) -> None:
        if value is None:
            resource.setrlimit(which, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        else:
            resource.setrlimit(which, (int(value), int(value)))

    cpu = limits.get("cpu_seconds")
    if cpu is not None:
        soft = math.ceil(cpu) + 1  # the supervisor enforces the exact limit by polling; this is the backstop
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    address_space = limits.get("address_space_mb")
    setlim(resource.RLIMIT_AS, None if address_space is None else address_space * mib)
    setlim(resource.RLIMIT_STACK, limits.get("stack_mb", 64) * mib)
    setlim(resource.RLIMIT_NPROC, limits.get("max_processes", 64))
    setlim(resource.RLIMIT_FSIZE, limits.get("file_size_mb", 64) * mib)
    setlim(resource.RLIMIT_NOFILE, limits.get("open_files", 256))
    setlim(resource.RLIMIT_CORE, 0)
    setlim(resource.RLIMIT_MSGQUEUE, 0)
    setlim(resource.RLIMIT_MEMLOCK, 0)


def reset_signals() -> None:
    """Python ignores SIGPIPE/SIGXFSZ and the supervisor catches SIGCHLD; a fresh program expects defaults."""
    for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGHUP,
                signal.SIGQUIT, signal.SIGXCPU):
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    signal.set_wakeup_fd(-1)


def drop_privileges(uid: int, gid: int) -> None:
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if os.getuid() != uid or os.geteuid() != uid:
        raise OSError(errno.EPERM, "privilege drop did not take effect")


def prepare_child(fd_map: dict[int, int], cwd: str, limits: dict, uid: int | None, no_new_privs: bool,
                  error_fd: int, *, before_exec: bool = True) -> int:
    """Runs in a freshly forked child: wire descriptors, limit, drop privileges. Returns the parked error fd.

    `before_exec=False` is the zygote's case (a warm interpreter forked per program, no exec follows): Python's own
    signal handlers stay as a fresh interpreter sets them, the process is made dumpable again after the uid change
    (the kernel clears that flag on a uid change; exec would restore it, and /proc ownership depends on it), and
    no parent-death signal is set (the program's parent is about to exit; PID 1 of the namespace adopts it).
    """
    os.setsid()
    if before_exec:
        reset_signals()
    # park every source (and the error pipe) above the target range so no dup2 clobbers a source still needed
    error_fd = fcntl.fcntl(error_fd, fcntl.F_DUPFD_CLOEXEC, _PARK_FD)
    staged = {target: fcntl.fcntl(source, fcntl.F_DUPFD_CLOEXEC, _PARK_FD) for target, source in fd_map.items()}
    for target, source in staged.items():
        os.dup2(source, target, inheritable=True)
    os.closerange(max(fd_map) + 1 if fd_map else 3, error_fd)
    os.closerange(error_fd + 1, 1 << 20)
    os.chdir(cwd)
    os.umask(0o022)
    os.setpriority(os.PRIO_PROCESS, 0, 0)  # the supervisor runs at a raised priority; programs must not
    apply_rlimits(limits)
    if uid is not None:
        drop_privileges(uid, uid)
        if not before_exec:
            prctl(PR_SET_DUMPABLE, 1)
    if no_new_privs:
        prctl(PR_SET_NO_NEW_PRIVS, 1)
    if before_exec:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    return error_fd


def child_exec(argv: list[str], env: dict, cwd: str, fd_map: dict[int, int], limits: dict, uid: int | None,
               no_new_privs: bool, error_fd: int) -> None:
    """Runs in the forked child: wire descriptors, limit, drop privileges, exec. Never returns."""
    try:
        error_fd = prepare_child(fd_map, cwd, limits, uid, no_new_privs, error_fd)
        os.execve(argv[0], argv, env)
    except BaseException as exc:  # report to the supervisor through the close-on-exec pipe
        try:
            os.write(error_fd, f"{type(exc).__name__}: {exc}".encode()[:4000])
        finally:
            os._exit(127)


# ---------------------------------------------------------------- cleaning a session between programs

def clear_directory(path: str, keep: tuple[str, ...] = ()) -> None:
    """Delete everything inside `path` except the names in `keep` (never following links; every writer is dead)."""
    import shutil

    for name in os.listdir(path):
        if name in keep:
            continue
        full = os.path.join(path, name)
        if os.path.isdir(full) and not os.path.islink(full):
            shutil.rmtree(full)  # fd-based on Linux: links inside are removed, never followed
        else:
            os.unlink(full)


_IPC_RMID = 0
_SYSV_REMOVERS = {"shm": lambda ident: _libc.shmctl(ident, _IPC_RMID, None),
                  "sem": lambda ident: _libc.semctl(ident, 0, _IPC_RMID),
                  "msg": lambda ident: _libc.msgctl(ident, _IPC_RMID, None)}


def remove_sysv_ipc() -> int:
    """Remove every System V shared memory segment, semaphore set and message queue of this IPC namespace (one
    program must not leave data for the next one of a batch); returns how many were removed."""
    removed = 0
    for kind, remove in _SYSV_REMOVERS.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as handle:
                lines = handle.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 1 and fields[1].lstrip("-").isdigit():
                _check(remove(int(fields[1])), f"removing System V {kind} {fields[1]}")
                removed += 1
    return removed


# ---------------------------------------------------------------- process inspection

def process_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, own cpu ticks, waited-for children's cpu ticks) from /proc/PID/stat; None if gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2:].split()
    return fields[0].decode(), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


def process_runnable(pid: int) -> bool:
    """Whether any thread of the process is running or waiting for a CPU (a busy thread hides behind a main
    thread that sleeps on a lock, so the process-level state is not enough)."""
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return False
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as handle:
                text = handle.read()
        except OSError:
            continue
        if text[text.rfind(b")") + 2:text.rfind(b")") + 3] == b"R":
            return True
    return False


def process_uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def process_ppid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    return int(text[text.rfind(b")") + 2:].split()[1])


def list_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- start-up probes

def _probe(action) -> str | None:
    """Run `action` in a forked child; None if it worked, else the reason."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_end)
        try:
            action()
            os._exit(0)
        except BaseException as exc:
            os.write(write_end, f"{type(exc).__name__}: {exc}".encode()[:2000])
            os._exit(1)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as handle:
        reason = handle.read().decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) == 0:
        return None
    return reason or f"probe exited with status {status}"


def probe_layers(root_dir: str, readonly_paths: list[str], probe_uid: int, interpreter: str) -> dict:
    """Which isolation layers work on this machine: {layer: {"active": bool, "detail": str}}."""
    layers: dict[str, dict] = {}
    for name, flag in NAMESPACES.items():
        reason = _probe(lambda flag=flag: unshare(flag))
        layers[f"{name}_namespace"] = {"active": reason is None, "detail": reason or f"unshare({_FLAG_NAMES[name]}) works"}

    def private_root() -> None:
        unshare(CLONE_NEWNS | (CLONE_NEWPID if layers["pid_namespace"]["active"] else 0))
        if layers["pid_namespace"]["active"]:  # /proc of a new PID namespace is mounted by its first process
            pid = os.fork()
            if pid == 0:
                try:
                    build_private_root(root_dir, readonly_paths, 1, probe_uid, probe_uid + 1, True)
                    os._exit(0 if os.path.exists(interpreter) else 3)
                except BaseException:
                    os._exit(4)
            _, status = os.waitpid(pid, 0)
            if os.waitstatus_to_exitcode(status) != 0:
                raise OSError(f"private root setup failed (status {os.waitstatus_to_exitcode(status)})")
        else:
            build_private_root(root_dir, readonly_paths, 1, probe_uid, probe_uid + 1, False)

    reason = _probe(private_root) if layers["mount_namespace"]["active"] else "needs a mount namespace"
    layers["private_root"] = {"active": reason is None,
                              "detail": reason or "minimal read-only root; project, home and data dirs invisible"}

    def drop() -> None:
        drop_privileges(probe_uid, probe_uid)

    reason = _probe(drop) if os.geteuid() == 0 else "not running as root: runs keep the caller's uid"
    layers["uid_drop"] = {"active": reason is None,
                          "detail": reason or "each session runs as its own unprivileged uid (RLIMIT_NPROC binds)"}
    reason = _probe(lambda: prctl(PR_SET_NO_NEW_PRIVS, 1))
    layers["no_new_privs"] = {"active": reason is None, "detail": reason or "setuid binaries cannot gain privileges"}
    reason = _probe(lambda: prctl(PR_SET_CHILD_SUBREAPER, 1))
    layers["subreaper"] = {"active": reason is None,
                           "detail": reason or "orphaned descendants reparent to the supervisor"}
    layers["rlimits"] = {"active": True, "detail": "CPU, address space, stack, processes, file size, open files"}
    return layers
