"""Batched judging (judge_batch): one session per worker, zygote-forked function-test programs, and the guarantees
that make it equivalent to judging one by one: same verdicts, no trace of one program visible to the next."""

from __future__ import annotations

import os
import sys

import pytest

from qwq.sandbox.batch import judge_batch
from qwq.sandbox.judge import FunctionCase, FunctionTests, StdioTest, judge
from qwq.sandbox.runner import Sandbox
from qwq.sandbox.verdicts import Limits, Verdict

from .helpers import HOSTILE_LIMITS, processes_of, require_layers
from .hostile_programs import ADD_TESTS, CORPUS

FAST = Limits(cpu_seconds=1, wall_seconds=1.5, memory_mb=512)
DOUBLE = FunctionTests("double", cases=[FunctionCase((1,), 2), FunctionCase((5,), 10), FunctionCase((-2,), -4)])
GOOD = "def double(x):\n    return 2 * x\n"


def fn(code: str, tests=DOUBLE, limits=FAST) -> dict:
    return {"code": code, "tests": tests, "limits": limits}


# A mixed set: right, wrong, raising, CPU-bound, sleeping, syntax error, exiting early, not defining the entry
# point, stdio programs right and wrong, a HumanEval-style check(candidate).
MIXED = [
    fn(GOOD),
    fn("def double(x):\n    return x + 2\n"),
    fn("def double(x):\n    raise ValueError('no')\n"),
    fn("def double(x):\n    while True:\n        pass\n"),
    fn("import time\ndef double(x):\n    time.sleep(100)\n"),
    fn("def double(x)\n    return 2 * x\n"),
    fn("import sys\nsys.exit(0)\n"),
    fn("def triple(x):\n    return 3 * x\n"),
    fn("import os\ndef double(x):\n    if x == 5:\n        os._exit(3)\n    return 2 * x\n"),
    {"code": "print(int(input()) * 2)\n", "tests": [StdioTest("3\n", "6\n"), StdioTest("4\n", "8\n")], "limits": FAST},
    {"code": "print(int(input()) + 3)\n", "tests": [StdioTest("3\n", "6\n"), StdioTest("4\n", "8\n")], "limits": FAST},
    fn("def add(a, b):\n    return a + b\n", FunctionTests("add", test_code=ADD_TESTS)),
    fn(GOOD),
]


def outcome(result) -> tuple:
    return result.verdict, result.passed, result.total, [(t.index, t.verdict) for t in result.tests]


def test_batch_verdicts_equal_one_by_one(sandbox):
    require_layers(sandbox, "pid_namespace", "uid_drop")
    one_by_one = [outcome(judge(sandbox=sandbox, **item)) for item in MIXED]
    batched = [outcome(r) for r in judge_batch(MIXED, workers=2, sandbox=sandbox)]
    assert batched == one_by_one
    verdicts = [v for v, *_ in batched]
    assert verdicts == [Verdict.OK, Verdict.WRONG_ANSWER, Verdict.RUNTIME_ERROR, Verdict.TIME_LIMIT,
                        Verdict.WALL_TIMEOUT, Verdict.COMPILE_ERROR, Verdict.RUNTIME_ERROR, Verdict.RUNTIME_ERROR,
                        Verdict.RUNTIME_ERROR, Verdict.OK, Verdict.WRONG_ANSWER, Verdict.OK, Verdict.OK]


def test_crashing_and_timing_out_programs_do_not_touch_their_neighbours(sandbox):
    bad = ["def double(x):\n    while True:\n        pass\n",  # CPU limit
           "import os\ndef double(x):\n    os.kill(os.getpid(), 9)\n",  # killed by a signal mid-call
           "def double(x):\n    return bytearray(1 << 34)\n",  # memory
           "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"]  # fork bomb
    items = []
    for code in bad:
        items += [fn(GOOD), fn(code, limits=HOSTILE_LIMITS)]
    items.append(fn(GOOD))
    results = judge_batch(items, workers=1, sandbox=sandbox)
    assert [r.verdict for r in results[0::2]] == [Verdict.OK] * (len(bad) + 1)
    assert all(r.passed == 3 for r in results[0::2])
    # the verdicts they get alone (MemoryError inside a call is the candidate's own exception: RUNTIME_ERROR; a
    # fork bomb at load never answers, and whether CPU or the wall guard notices first depends on the load)
    allowed = [{Verdict.TIME_LIMIT}, {Verdict.RUNTIME_ERROR}, {Verdict.RUNTIME_ERROR},
               {Verdict.TIME_LIMIT, Verdict.WALL_TIMEOUT}]
    assert all(r.verdict in ok for r, ok in zip(results[1::2], allowed)), [r.message for r in results[1::2]]
    assert processes_of(sandbox.uid_range) == []


# Program A leaves everything it can behind; program B (same session: workers=1) reports what it sees.
LEAVE_TRACES = """
import ctypes, os, subprocess, time
open('note.txt', 'w').write('a')
open('/tmp/note', 'w').write('a')
open('/dev/shm/note', 'w').write('a')
os.mkdir('dir')
os.chmod('.', 0o777)
try:
    os.setxattr('.', 'user.note', b'a')
except OSError:
    pass
libc = ctypes.CDLL(None)
libc.shmget(4242, 4096, 0o1666)
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(0.3)
        open('/sandbox/late.txt', 'w').write('daemon')
        time.sleep(1000)
    os._exit(0)
subprocess.Popen(['sleep', '1000'])
os.chdir('/tmp')
def probe():
    return 'a was here'
"""

OBSERVE = """
import ctypes, os, stat, time
def probe():
    time.sleep(0.5)  # past the moment A's daemon would write
    mine = os.getpid()
    others = []
    for name in os.listdir('/proc'):
        if name.isdigit() and int(name) != mine:
            try:
                if os.stat('/proc/' + name).st_uid == os.getuid():
                    others.append(open('/proc/' + name + '/cmdline').read())
            except OSError:
                pass
    return {"files": sorted(os.listdir('.')) + sorted(os.listdir('/tmp')) + sorted(os.listdir('/dev/shm')),
            "others": others, "shm": ctypes.CDLL(None).shmget(4242, 0, 0), "cwd": os.getcwd(),
            "mode": oct(stat.S_IMODE(os.stat('/sandbox').st_mode)), "xattrs": os.listxattr('/sandbox')}
"""

CLEAN_VIEW = {"files": [".shm", ".tmp", "solution.py"], "others": [], "shm": -1, "cwd": "/sandbox", "mode": "0o755",
              "xattrs": []}


def test_a_program_sees_nothing_of_the_one_before(sandbox):
    require_layers(sandbox, "pid_namespace", "uid_drop", "ipc_namespace", "private_root")
    view = FunctionTests("probe", cases=[FunctionCase((), CLEAN_VIEW)])
    leave = FunctionTests("probe", cases=[FunctionCase((), "a was here")])
    limits = Limits(cpu_seconds=2, wall_seconds=3, memory_mb=512)
    alone = judge(OBSERVE, view, sandbox=sandbox, limits=limits)
    assert alone.verdict is Verdict.OK, alone.message  # the view of a fresh session
    items = [fn(LEAVE_TRACES, leave, limits), fn(OBSERVE, view, limits)] * 2
    results = judge_batch(items, workers=1, sandbox=sandbox)
    assert [r.verdict for r in results] == [Verdict.OK] * 4, [r.message for r in results]
    # across batches too: the second batch gets the first one's session back from the warm pool
    first = judge_batch(items[:1], workers=1, sandbox=sandbox)[0]
    idle = list(sandbox._idle)
    second = judge_batch(items[1:2], workers=1, sandbox=sandbox)[0]
    assert first.verdict is second.verdict is Verdict.OK, second.message
    assert idle and set(idle) & set(sandbox._idle), "the warm session was not reused"


def test_batch_programs_come_from_zygotes_with_every_limit(sandbox):
    require_layers(sandbox, "pid_namespace", "uid_drop", "no_new_privs")
    code = ("import os, resource, sys\n"
            "def probe():\n"
            "    status = open('/proc/self/status').read()\n"
            "    return [b'zygote' in open('/proc/self/cmdline', 'rb').read(), os.getuid() >= 100000,\n"
            "            os.getuid() == os.geteuid() == os.getgid(), 'NoNewPrivs:\\t1' in status,\n"
            "            os.stat('/proc/self').st_uid == os.getuid(), resource.getrlimit(resource.RLIMIT_AS)[0],\n"
            "            resource.getrlimit(resource.RLIMIT_NPROC)[0], os.getcwd(), sys.argv[1:3], sys.flags.isolated,\n"
            "            sys.flags.no_site, open('/proc/self/comm').read().strip()]\n")
    limits = Limits(cpu_seconds=2, wall_seconds=3, memory_mb=300, max_processes=17)
    comm = os.path.basename(sys.executable)[:15]  # what exec gives the process, not the spare's "qwq-spare"
    expected = [True, True, True, True, True, 300 << 20, 17, "/sandbox", ["candidate", "/sandbox/solution.py"], 1, 0,
                comm]
    tests = FunctionTests("probe", cases=[FunctionCase((), expected)])
    results = judge_batch([fn(code, tests, limits), fn(code + "\n", tests, limits)], workers=1, sandbox=sandbox)
    assert [r.verdict for r in results] == [Verdict.OK, Verdict.OK], [r.message for r in results]
    exec_path = judge(code, tests, sandbox=sandbox, limits=limits)  # the same program exec'd: only cmdline differs
    assert exec_path.verdict is Verdict.WRONG_ANSWER and "expected [True" in exec_path.message
    assert "got [False, True, True, True, True" in exec_path.message


def test_hostile_function_programs_in_one_batch(sandbox):
    """The corpus's attempts to fake a function-test pass, judged back to back in one zygote session, with a
    correct program after each: every cheat fails, every correct program passes, nothing survives."""
    require_layers(sandbox, "pid_namespace", "uid_drop")
    cheats = [case for case in CORPUS if case.function]
    tests = FunctionTests("add", test_code=ADD_TESTS)
    correct = "def add(a, b):\n    return a + b\n"
    items = []
    for case in cheats:
        items += [fn(case.code, tests, HOSTILE_LIMITS), fn(correct + f"# {case.name}\n", tests, HOSTILE_LIMITS)]
    results = judge_batch(items, workers=2, sandbox=sandbox)
    for case, cheat, good in zip(cheats, results[0::2], results[1::2]):
        assert cheat.verdict.value in case.verdicts and cheat.passed < cheat.total, (case.name, cheat.message)
        assert good.verdict is Verdict.OK, (case.name, good.message)
    assert processes_of(sandbox.uid_range) == []


def test_identical_jobs_are_judged_once_and_answered_alike(sandbox):
    items = [fn(GOOD), fn("def double(x):\n    return x\n"), fn(GOOD), fn(GOOD)]
    results = judge_batch(items, workers=2, sandbox=sandbox)
    assert [r.verdict for r in results] == [Verdict.OK, Verdict.WRONG_ANSWER, Verdict.OK, Verdict.OK]
    assert results[2] is not results[0] and results[2].to_dict() == results[0].to_dict()


def test_batch_without_zygotes_gives_the_same_verdicts():
    """Without a PID namespace the supervisor cannot adopt zygote-forked programs: batches fall back to exec."""
    box = Sandbox(max_sessions=2, disable=["pid_namespace"])
    try:
        items = MIXED[:3] + MIXED[5:8] + MIXED[9:]
        expected = [outcome(judge(sandbox=box, **item)) for item in items]
        assert [outcome(r) for r in judge_batch(items, workers=1, sandbox=box)] == expected
    finally:
        box.close()


def test_a_dead_warm_session_costs_no_verdict(sandbox):
    import signal

    judge_batch([fn(GOOD), fn(GOOD + "# 2\n")], workers=1, sandbox=sandbox)
    assert sandbox._idle, "no warm session was kept"
    for session in sandbox._idle:
        os.kill(session.launcher_pid, signal.SIGKILL)  # its supervisor and zygotes die with it
    results = judge_batch([fn(GOOD + "# 3\n"), fn(GOOD + "# 4\n")], workers=1, sandbox=sandbox)
    assert [r.verdict for r in results] == [Verdict.OK, Verdict.OK], [r.message for r in results]


def test_bad_items_are_usage_errors_before_anything_runs(sandbox):
    from qwq.utils.errors import UsageError

    with pytest.raises(UsageError):
        judge_batch([fn(GOOD), {"code": "x", "tests": []}], sandbox=sandbox)
