"""Helpers shared by the sandbox tests (process-leak scans, layer requirements, small limits)."""

from __future__ import annotations

import os

from qwq.sandbox.runner import Sandbox
from qwq.sandbox.verdicts import Limits

# Hostile programs get small limits so the corpus stays fast on two shared cores.
HOSTILE_LIMITS = Limits(cpu_seconds=1, wall_seconds=1.5, memory_mb=256, max_processes=32, disk_mb=32,
                        file_size_mb=16, stdout_bytes=1 << 20, stderr_bytes=256 * 1024)


def processes_of(uids) -> list[tuple[int, int, str]]:
    """(pid, uid, cmdline) of live host processes running as any of `uids`."""
    wanted = set(uids)
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            uid = os.stat(f"/proc/{name}").st_uid
            if uid in wanted:
                with open(f"/proc/{name}/cmdline", "rb") as handle:
                    found.append((int(name), uid, handle.read().replace(b"\0", b" ").decode(errors="replace")))
        except OSError:
            continue
    return found


def require_layers(sandbox: Sandbox, *names: str) -> None:
    """Tests assert the isolation layers they rely on instead of passing vacuously without them."""
    layers = sandbox.isolation["layers"]
    missing = {n: layers[n]["detail"] for n in names if not layers[n]["active"]}
    assert not missing, f"isolation layers this test relies on are inactive here: {missing}"
