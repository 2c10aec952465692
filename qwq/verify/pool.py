"""A pool of worker processes whose stuck tasks can be killed.

Why not `concurrent.futures.ProcessPoolExecutor` or `signal.alarm`: a sympy simplification can run for minutes
or eat all memory, and neither of those can stop it. `signal.alarm` only works on the main thread (a trainer or a
server calls verifiers from other threads), and an executor cannot cancel a task that already runs. Here every
task has a deadline; a worker that passes it is killed (SIGKILL) and replaced, and the task's outcome is
`timeout`. A worker that dies (segfault, memory limit) gives `crashed` and is replaced too. The caller never sees
an exception from a task: it gets an `Outcome` and decides (verifiers turn anything but `ok` into None).

Workers are fresh interpreters (`python -m qwq.verify._worker`), never forks: safe when the parent has threads
(torch, uvicorn), no CUDA context is inherited, and the caller's script is not re-imported. Each worker may preload modules (sympy, math-verify) once, so a task pays only
for its own work, and caps its address space so a runaway expression raises MemoryError instead of swapping.
"""

from __future__ import annotations

import atexit
import importlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Sequence

OK, TIMEOUT, ERROR, CRASHED = "ok", "timeout", "error", "crashed"
_STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Outcome:
    """What became of one task: status is ok / timeout / error / crashed; value is set only when ok."""

    status: str
    value: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == OK


def _limit_memory(limit_bytes: int | None) -> None:
    if not limit_bytes:
        return
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit_bytes = min(limit_bytes, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, hard))
    except (ImportError, ValueError, OSError):
        pass  # not every platform lets a process lower its own limit; the timeout still protects us


def worker_main(conn: Connection, preload: tuple[str, ...], memory_limit_bytes: int | None) -> None:
    _limit_memory(memory_limit_bytes)
    for name in preload:
        importlib.import_module(name)
    conn.send(("ready", None, None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        task_id, fn, args = message
        try:
            reply = (task_id, OK, fn(*args))
        except MemoryError:
            reply = (task_id, ERROR, "MemoryError: the task went over the worker's memory limit")
        except BaseException as exc:  # noqa: BLE001 - a task's failure is data for the caller, never fatal here
            reply = (task_id, ERROR, f"{type(exc).__name__}: {str(exc)[:500]}")
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable return value
            conn.send((task_id, ERROR, f"cannot send the result back: {type(exc).__name__}: {str(exc)[:200]}"))


class _Worker:
    """One `python -m qwq.verify._worker` child speaking pickles over a socket pair.

    A plain subprocess rather than multiprocessing's spawn: spawn re-imports the parent's __main__ script in the
    child, which breaks (or re-runs) any script without an `if __name__ == "__main__"` guard.
    """

    def __init__(self, preload: tuple[str, ...], memory_limit_bytes: int | None):
        parent_sock, child_sock = socket.socketpair()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
        args = [sys.executable, "-m", "qwq.verify._worker", str(child_sock.fileno()), str(memory_limit_bytes or 0),
                *preload]
        self.process = subprocess.Popen(args, pass_fds=[child_sock.fileno()], env=env,
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        child_sock.close()
        self.conn = Connection(parent_sock.detach())
        self.ready = False
        self.started_at = time.monotonic()
        self.task: tuple[int, float] | None = None  # (index in the batch, deadline)

    def kill(self) -> None:
        try:
            self.process.kill()
        except OSError:
            pass
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.conn.close()

    def stop(self) -> None:
        try:
            self.conn.send(None)
            self.process.wait(timeout=2)
            self.conn.close()
        except (OSError, subprocess.TimeoutExpired):
            self.kill()


class SubprocessPool:
    """N worker processes running `fn(*args)` tasks with a per-task timeout.

    `map(fn, [args, ...])` blocks until every task has an `Outcome`, in input order. `fn` must be a module-level
    function (it is pickled by reference). One batch runs at a time; concurrent callers queue on a lock.
    """

    def __init__(self, workers: int | None = None, timeout: float = 10.0, preload: Sequence[str] = (),
                 memory_limit_mb: int | None = 4096):
        self.workers = max(1, workers if workers is not None else min(2, os.cpu_count() or 1))
        self.timeout = float(timeout)
        self.preload = tuple(preload)
        self.memory_limit_bytes = memory_limit_mb * 2**20 if memory_limit_mb else None
        self._pool: list[_Worker] = []
        self._lock = threading.Lock()
        self._closed = False
        self.restarts = 0  # workers replaced after a timeout or a crash (for tests and logs)

    def __enter__(self) -> "SubprocessPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _spawn(self) -> _Worker:
        return _Worker(self.preload, self.memory_limit_bytes)

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        self._pool[self._pool.index(worker)] = self._spawn()
        self.restarts += 1

    def map(self, fn: Callable, arg_tuples: Sequence[tuple], timeout: float | None = None) -> list[Outcome]:
        if self._closed:
            raise RuntimeError("this SubprocessPool is closed")
        limit = self.timeout if timeout is None else float(timeout)
        with self._lock:
            while len(self._pool) < self.workers:
                self._pool.append(self._spawn())
            results: list[Outcome | None] = [None] * len(arg_tuples)
            pending = deque(range(len(arg_tuples)))
            while pending or any(w.task is not None for w in self._pool):
                for worker in self._pool:
                    if worker.ready and worker.task is None and pending:
                        index = pending.popleft()
                        try:
                            worker.conn.send((index, fn, tuple(arg_tuples[index])))
                        except Exception as exc:  # noqa: BLE001 - unpicklable arguments, or a dead worker
                            if not worker.process.is_alive():
                                pending.appendleft(index)
                                self._replace(worker)
                            else:
                                results[index] = Outcome(ERROR, error=f"cannot send the task: {exc}")
                            continue
                        worker.task = (index, time.monotonic() + limit)
                self._wait_once(results)
            return [r if r is not None else Outcome(CRASHED, error="lost") for r in results]

    def _wait_once(self, results: list[Outcome | None]) -> None:
        now = time.monotonic()
        deadlines = [w.task[1] for w in self._pool if w.task is not None]
        deadlines += [w.started_at + _STARTUP_TIMEOUT_S for w in self._pool if not w.ready]
        wait_s = max(0.0, min(deadlines) - now) if deadlines else 0.05
        by_conn = {w.conn: w for w in self._pool}
        for conn in wait(list(by_conn), timeout=wait_s):  # a dead child shows up as EOF on its socket
            worker = by_conn[conn]
            try:
                task_id, status, payload = worker.conn.recv()
            except (EOFError, OSError):
                if worker.task is not None:
                    results[worker.task[0]] = Outcome(CRASHED, error="the worker process died during the task")
                elif not worker.ready:
                    raise RuntimeError("a verifier worker process died while starting") from None
                self._replace(worker)
                continue
            if task_id == "ready":
                worker.ready = True
                continue
            results[task_id] = Outcome(OK, value=payload) if status == OK else Outcome(status, error=payload)
            worker.task = None
        now = time.monotonic()
        for worker in list(self._pool):
            if worker.task is not None and now >= worker.task[1]:
                results[worker.task[0]] = Outcome(TIMEOUT, error="the task ran past its timeout and was killed")
                self._replace(worker)
            elif not worker.ready and now >= worker.started_at + _STARTUP_TIMEOUT_S:
                raise RuntimeError("a verifier worker process did not start in time")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            for worker in self._pool:
                worker.stop()
            self._pool.clear()


_shared: dict[tuple, SubprocessPool] = {}
_shared_lock = threading.Lock()


def shared_pool(preload: Sequence[str] = (), workers: int | None = None, timeout: float = 10.0) -> SubprocessPool:
    """A process-wide pool for the given preload set, created on first use and closed at exit. `timeout` is the
    default of a pool created here; every `map` call may pass its own."""
    key = (tuple(preload), workers)
    with _shared_lock:
        pool = _shared.get(key)
        if pool is None or pool._closed:
            pool = _shared[key] = SubprocessPool(workers=workers, timeout=timeout, preload=preload)
        return pool


@atexit.register
def _close_shared() -> None:
    for pool in _shared.values():
        try:
            pool.close()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass
