"""Judge many programs with few sessions: the code reward's path (tens of small function-test programs a step).

    judge_batch(items, workers=2, sandbox=None, warm=True) -> list[JudgeResult]     # items: judge()'s kwargs

Each worker thread borrows ONE session (a warm one from the sandbox's idle pool when there is one) and judges
programs from a shared queue in it. Between two programs the session is reset (Session.reset: no process of the
last program survives, /sandbox, /tmp and /dev/shm are emptied and given back to the candidate uid, /judge keeps
only the harness files, System V IPC objects are removed), so a program sees nothing of the one before and its
verdict is the one `judge()` gives it alone (tests/sandbox/test_batch.py checks both). Each program still runs in
fresh processes with its own limits and uids; with `warm`, function-test programs are forked from the session's
zygotes (zygote.py) instead of starting Python twice per program, which is most of the speed-up.
"""

from __future__ import annotations

import copy
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Sequence

from qwq.sandbox.judge import JudgeResult, _Job, _write_harness
from qwq.sandbox.runner import Sandbox, Session, SessionError, default_sandbox

# what a zygote needs next to the harness in /judge (root-owned, world-readable: nothing secret in them)
ZYGOTE_FILES = {name: Path(__file__).with_name(name).read_bytes() for name in ("zygote.py", "isolation.py")}


def judge_batch(items: Sequence[dict], *, workers: int = 2, sandbox: Sandbox | None = None,
                warm: bool = True) -> list[JudgeResult]:
    """Judge `items` (each holds judge()'s keyword arguments) with `workers` threads, one reused session each;
    identical jobs are judged once. The verdicts are those judge() gives one by one. A program whose session
    fails after serving others is retried once in a fresh session; a bug raises in the caller's thread."""
    jobs = [_Job(**item) for item in items]
    sandbox = sandbox or default_sandbox()
    first_of: dict[str, int] = {}
    alias: dict[int, int] = {}
    for index, job in enumerate(jobs):
        key = job.key()
        if key is not None and key in first_of:
            alias[index] = first_of[key]
        elif key is not None:
            first_of[key] = index
    # sessions are sized by disk_mb: keep jobs of one size together
    queue = deque(sorted((i for i in range(len(jobs)) if i not in alias), key=lambda i: jobs[i].limits.disk_mb))
    results: list[JudgeResult | None] = [None] * len(jobs)
    warm = warm and sum(jobs[i].is_function for i in queue) > 1
    lock = threading.Lock()

    retried: set[int] = set()
    failures: list[BaseException] = []

    def work() -> None:
        session: Session | None = None
        clean = True  # False while a program's traces may be in the session (it is then closed, never reused)
        try:
            while True:
                with lock:
                    if not queue or failures:
                        return
                    index = queue.popleft()
                job, used = jobs[index], False
                try:
                    if session is not None and (session.closed or session.disk_mb != job.limits.disk_mb):
                        sandbox.give_back(session, clean)
                        session = None
                    if session is not None and index in retried:  # the retry gets a session of its own
                        sandbox.give_back(session, clean)
                        session = None
                    if session is None:
                        session = (sandbox.session(job.limits.disk_mb) if index in retried
                                   else sandbox.borrow_session(job.limits.disk_mb))
                        clean = True
                    used = session.served > 0
                    if warm and job.is_function:
                        _prepare_zygotes(session)
                    clean = False
                    session.served += 1
                    results[index] = job.run(session)
                    session.reset(keep_judge=tuple(sorted(session.prepared & _KEPT_JUDGE_FILES)))
                    clean = True
                except SessionError as exc:  # that session is gone (aborted); the next job opens a new one
                    session = None
                    if results[index] is None and used and index not in retried:
                        # a session that served others may have failed for reasons of its own: one more try in
                        # a fresh session, so the program gets the verdict it would get alone
                        retried.add(index)
                        with lock:
                            queue.appendleft(index)
                    elif results[index] is None:
                        results[index] = job.sandbox_error(exc)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread below
            failures.append(exc)
        finally:
            if session is not None:
                sandbox.give_back(session, clean)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(workers, len(queue))))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    for index, original in alias.items():
        results[index] = copy.deepcopy(results[original])
    return results  # type: ignore[return-value]


_KEPT_JUDGE_FILES = frozenset({"harness.py", *ZYGOTE_FILES})


def _prepare_zygotes(session: Session) -> None:
    """Start the candidate and checker zygotes once per session, with the exact command prefixes of
    _judge_function's programs (so the supervisor forks those from them)."""
    if "zygotes" in session.prepared:
        return
    _write_harness(session)
    session.write(ZYGOTE_FILES, where="judge", owner="root", mode=0o644)
    session.prepared.update(ZYGOTE_FILES)
    session.prepared.add("zygotes")
    j = session.paths["judge"]
    session.start_zygotes([[sys.executable, "-I", f"{j}/harness.py"], [sys.executable, "-I", "-S", f"{j}/harness.py"]])
