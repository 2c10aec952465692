"""The sandbox's fork server: a small single-threaded process that starts every session (standard library only).

The host (a threaded service) never forks itself: forking a threaded Python process is unsafe. It starts this
server once (`python -I -S`), receives the isolation probe report, and then passes it one socket per session
(SCM_RIGHTS over a SOCK_SEQPACKET channel). For each socket the server forks a launcher, which reads the session
config, unshares the namespaces, reports its pid (the host's handle to kill everything) and forks the supervisor:
PID 1 of the new namespaces. The supervisor builds the private root and serves the session until closed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

from qwq.sandbox import isolation as iso
from qwq.sandbox.protocol import ProtocolError, recv_fd, recv_message, send_message
from qwq.sandbox.supervisor import Supervisor


def _launch(conn_fd: int, config: dict) -> None:
    """The launcher process (never returns): unshare, fork the supervisor, wait for it."""
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    sock = socket.socket(fileno=conn_fd)
    try:
        request = recv_message(sock)
        layers = config["layers"]
        namespaces = [n for n in ("mount", "pid", "net", "ipc", "uts") if layers[f"{n}_namespace"]["active"]]
        flags = 0
        for name in namespaces:
            flags |= iso.NAMESPACES[name]
        if flags:
            iso.unshare(flags)
        send_message(sock, {"op": "launcher", "pid": os.getpid()})
    except (ProtocolError, OSError) as exc:
        try:
            send_message(sock, {"op": "error", "error": f"launcher: {exc}"})
        finally:
            os._exit(1)
    pid = os.fork()
    if pid == 0:
        _supervise(sock, config, request, "pid" in namespaces)
        os._exit(0)
    sock.close()
    while True:
        try:
            os.waitpid(pid, 0)
            break
        except ChildProcessError:
            break
        except InterruptedError:
            continue
    os._exit(0)


def _supervise(sock: socket.socket, config: dict, request: dict, pid_namespace: bool) -> None:
    iso.prctl(iso.PR_SET_PDEATHSIG, signal.SIGKILL)  # the host kills a session by killing its launcher
    try:
        os.nice(-10)  # the supervisor must keep polling while a fork bomb saturates the cores
    except OSError:
        pass
    layers = config["layers"]
    uid = request.get("uid") if layers["uid_drop"]["active"] else None
    if uid is not None and uid < 1000:
        send_message(sock, {"op": "error", "error": f"refusing to run sessions as system uid {uid}"})
        return
    private_root = layers["private_root"]["active"]
    try:
        if layers["uts_namespace"]["active"]:
            socket.sethostname("sandbox")
        if layers["subreaper"]["active"]:
            iso.prctl(iso.PR_SET_CHILD_SUBREAPER, 1)
        if private_root:
            iso.build_private_root(config["root_dir"], config["readonly_paths"], int(request.get("disk_mb", 128)),
                                   uid if uid is not None else 0, (uid + 1) if uid is not None else 0, True)
            paths = {"sandbox": iso.SANDBOX_DIR, "judge": iso.JUDGE_DIR}
        else:
            import tempfile

            paths = {"sandbox": tempfile.mkdtemp(prefix="qwq-sbx-work-"),
                     "judge": tempfile.mkdtemp(prefix="qwq-sbx-judge-")}
            os.chmod(paths["judge"], 0o755)
            if uid is not None:
                os.chown(paths["sandbox"], uid, uid)
    except OSError as exc:
        send_message(sock, {"op": "error", "error": f"session setup failed: {exc}"})
        return
    send_message(sock, {"op": "ready", "paths": paths})
    supervisor = Supervisor(sock, uid, paths, pid_namespace, layers["no_new_privs"]["active"])
    try:
        supervisor.serve()
    finally:
        if not private_root:
            import shutil

            for path in paths.values():
                shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    # No parent-death signal here: it follows the host *thread* that started us, and pool threads come and go.
    # The host's end of the control socket closes when the host exits, which ends the loop below.
    control = socket.socket(fileno=int(sys.argv[1]))
    config = json.loads(control.recv(1 << 20))
    config["layers"] = iso.probe_layers(config["root_dir"], config["readonly_paths"], config["probe_uid"],
                                        config["interpreter"])
    for name in config.get("disable", []):
        if name in config["layers"]:
            config["layers"][name] = {"active": False, "detail": "disabled by the host"}
    if not config["layers"]["mount_namespace"]["active"] and config["layers"]["private_root"]["active"]:
        config["layers"]["private_root"] = {"active": False, "detail": "needs the mount namespace, which is off"}
    control.send(json.dumps(config["layers"]).encode())
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # launchers are reaped by the kernel
    while True:
        fd = recv_fd(control)
        if fd is None:
            break
        if fd < 0:
            continue
        if os.fork() == 0:
            control.close()
            _launch(fd, config)
        os.close(fd)


if __name__ == "__main__":
    main()
