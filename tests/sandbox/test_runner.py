"""Runner behaviour: limits, verdicts, languages, output caps, isolation report, fallbacks, verdict stability."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from qwq.sandbox.judge import StdioTest, judge
from qwq.sandbox.languages import available_languages, get_language, language_for_file
from qwq.sandbox.protocol import b64
from qwq.sandbox.runner import LAYERS, Sandbox, SandboxUnavailable
from qwq.sandbox.verdicts import Limits, RunResult, Verdict, classify
from qwq.utils.errors import UsageError
from .helpers import processes_of, require_layers

SMALL = Limits(cpu_seconds=1, wall_seconds=1.5, memory_mb=256)


# ---------------------------------------------------------------- pure parts
def test_limits_validate_fields_by_name():
    with pytest.raises(UsageError, match="cpu_seconds"):
        Limits(cpu_seconds=0)
    with pytest.raises(UsageError, match="memory_mb"):
        Limits(memory_mb=-5)
    with pytest.raises(UsageError, match="unknown limit field"):
        Limits.from_dict({"cpu": 1})
    assert Limits(cpu_seconds=2).effective_wall_seconds == 5
    assert Limits(memory_mb=None).to_wire()["address_space_mb"] is None
    assert Limits(memory_mb=100).to_wire(get_language("js"))["address_space_mb"] == 100 + 2048


def _proc(**kw) -> dict:
    base = {"exit_code": 0, "signal": None, "killed": None, "cpu_seconds": 0.1, "stdout": b64(b""),
            "stderr": b64(b""), "stdout_truncated": False, "stderr_truncated": False, "exec_error": None}
    base.update(kw)
    return base


@pytest.mark.parametrize("fields, verdict", [
    ({}, Verdict.OK),
    ({"exit_code": 3}, Verdict.RUNTIME_ERROR),
    ({"exit_code": None, "signal": 11}, Verdict.RUNTIME_ERROR),
    ({"exit_code": None, "signal": 9, "killed": "cpu", "cpu_seconds": 1.02}, Verdict.TIME_LIMIT),
    ({"exit_code": None, "signal": 24}, Verdict.TIME_LIMIT),  # SIGXCPU from the RLIMIT_CPU backstop
    ({"exit_code": 0, "cpu_seconds": 1.5}, Verdict.TIME_LIMIT),  # finished, but over the CPU limit
    ({"exit_code": None, "signal": 9, "killed": "wall"}, Verdict.WALL_TIMEOUT),
    ({"exit_code": 1, "stderr": b64(b"Traceback...\nMemoryError\n")}, Verdict.MEMORY_LIMIT),
    ({"exit_code": None, "signal": 6, "stderr": b64(b"what():  std::bad_alloc")}, Verdict.MEMORY_LIMIT),
    ({"exit_code": None, "signal": 9, "killed": "output", "stdout_truncated": True}, Verdict.OUTPUT_LIMIT),
    ({"exec_error": "PermissionError: no"}, Verdict.SANDBOX_ERROR),
    ({"exit_code": 0, "stderr": b64(b"MemoryError")}, Verdict.OK),  # printing the word is not running out
])
def test_classify(fields, verdict):
    assert classify(_proc(**fields), Limits(cpu_seconds=1))[0] is verdict


def test_result_round_trips_through_dict():
    result = RunResult(Verdict.TIME_LIMIT, stdout="a", cpu_seconds=1.5, compile=RunResult(Verdict.OK))
    again = RunResult.from_dict(result.to_dict())
    assert again == result and again.to_dict()["verdict"] == "TIME_LIMIT"


def test_languages():
    assert language_for_file("x.cpp") == "cpp" and language_for_file("a/b.py") == "python"
    with pytest.raises(UsageError, match="extension"):
        language_for_file("x.rs")
    with pytest.raises(UsageError, match="unknown language"):
        get_language("cobol")
    assert available_languages()["python"] is True


# ---------------------------------------------------------------- running programs
def test_isolation_report_names_every_layer(sandbox):
    report = sandbox.isolation
    assert set(report["layers"]) == set(LAYERS)
    assert all({"active", "detail"} <= set(layer) for layer in report["layers"].values())
    assert sorted(report["active"] + report["inactive"]) == sorted(LAYERS)


def test_python_sees_only_its_private_world(full_isolation):
    code = ("import os, socket\nprint(os.getuid() != 0, os.getpid(), os.getcwd(), sorted(os.listdir('/')))\n"
            "print(socket.gethostname(), sorted(os.environ))\n")
    result = full_isolation.run(code)
    assert result.verdict is Verdict.OK, result
    first, second = result.stdout.splitlines()
    assert first.startswith("True 2 /sandbox") and "'work'" not in first and "'home'" not in first
    assert second.startswith("sandbox") and "QWQ" not in second


def test_stdin_stdout_and_exit_code(sandbox):
    result = sandbox.run("import sys\nn = int(sys.stdin.readline())\nprint(n * 2)\nsys.exit(n)", stdin="21\n")
    assert result.verdict is Verdict.RUNTIME_ERROR and result.exit_code == 21 and result.stdout == "42\n"
    big = "x" * (3 << 20)  # larger than a pipe buffer: stdin must not deadlock
    assert sandbox.run("import sys; print(len(sys.stdin.read()))", stdin=big).stdout == f"{len(big)}\n"


def test_output_cap_truncates_and_flags(sandbox):
    limits = Limits(cpu_seconds=2, stdout_bytes=1000, stderr_bytes=500)
    result = sandbox.run("import sys\nprint('a' * 5000)\nsys.stderr.write('b' * 100)", limits=limits)
    assert result.verdict is Verdict.OUTPUT_LIMIT and result.stdout_truncated and not result.stderr_truncated
    assert result.stdout == "a" * 1000


def test_peak_memory_and_cpu_are_measured(sandbox):
    result = sandbox.run("x = bytearray(150 << 20)\nimport time\nt = time.process_time()\n"
                         "while time.process_time() - t < 0.3: pass", limits=Limits(cpu_seconds=3))
    assert result.verdict is Verdict.OK
    assert result.peak_memory_mb > 140 and 0.3 <= result.cpu_seconds < 3


def test_cpp_compile_run_and_compile_error(sandbox):
    ok = sandbox.run("#include <cstdio>\nint main(){int a,b; scanf(\"%d %d\",&a,&b); printf(\"%d\\n\", a+b);}",
                     "cpp", "2 40")
    assert ok.verdict is Verdict.OK and ok.stdout == "42\n" and ok.compile.verdict is Verdict.OK
    bad = sandbox.run("int main(){ return undefined_name; }", "cpp")
    assert bad.verdict is Verdict.COMPILE_ERROR and "undefined_name" in bad.stderr


@pytest.mark.skipif(not available_languages()["js"], reason="node is not installed")
def test_javascript_runs(sandbox):
    result = sandbox.run("const x = require('fs').readFileSync(0, 'utf8'); console.log(x.trim().length)", "js", "abc")
    assert result.verdict is Verdict.OK and result.stdout == "3\n"


def test_sessions_run_concurrently_under_distinct_uids(sandbox):
    require_layers(sandbox, "uid_drop")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: sandbox.run("import os; print(os.getuid())"), range(8)))
    assert all(r.verdict is Verdict.OK for r in results)
    assert {int(r.stdout) for r in results} <= set(sandbox.uid_range)


# ---------------------------------------------------------------- fallbacks and requirements
def test_required_layer_missing_refuses_to_start():
    with pytest.raises(SandboxUnavailable, match="net_namespace"):
        Sandbox(disable=["net_namespace"], require=["net_namespace"]).start()
    with pytest.raises(SandboxUnavailable, match="unknown isolation layer"):
        Sandbox(require=["seccomp"])


@pytest.mark.slow
def test_without_pid_namespace_daemons_still_die(sandbox):
    require_layers(sandbox, "uid_drop", "subreaper")
    daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(1000)\nprint('parent')"
    with Sandbox(max_sessions=2, disable=["pid_namespace"]) as box:
        assert "pid_namespace" in box.isolation["inactive"]
        assert box.run(daemon).stdout == "parent\n"
        assert box.run("while True: pass", limits=SMALL).verdict is Verdict.TIME_LIMIT
        assert processes_of(box.uid_range) == []


@pytest.mark.slow
def test_without_any_namespace_the_fallback_is_loud_and_still_kills_daemons(caplog):
    off = ["mount_namespace", "pid_namespace", "net_namespace", "ipc_namespace", "uts_namespace"]
    daemon = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(987)\nprint('parent')"
    with Sandbox(max_sessions=2, disable=off) as box, caplog.at_level("WARNING", logger="qwq.sandbox"):
        report = box.isolation
        assert set(off) | {"private_root"} <= set(report["inactive"])
        assert box.run(daemon).stdout == "parent\n"
        assert box.run("import time; time.sleep(100)", limits=SMALL).verdict is Verdict.WALL_TIMEOUT
    assert "INACTIVE" in caplog.text
    leftover = subprocess.run(["pgrep", "-f", "time.sleep\\(987\\)"], capture_output=True, text=True).stdout
    assert leftover.strip() == ""


# ---------------------------------------------------------------- verdict stability under load
STABILITY = [
    ("correct", "a, b = map(int, input().split())\nprint(a + b)", Verdict.OK),
    ("wrong", "a, b = map(int, input().split())\nprint(a + b + 1)", Verdict.WRONG_ANSWER),
    ("infinite_loop", "while True:\n    pass", Verdict.TIME_LIMIT),
    ("one_gigabyte", "x = bytearray(1 << 30)\nprint(3)", Verdict.MEMORY_LIMIT),
    ("fork_attempt", "import os, time\nfor _ in range(500):\n    if os.fork() == 0:\n        time.sleep(30)\n"
                     "        os._exit(0)\nprint(3)", Verdict.RUNTIME_ERROR),
    ("slow_but_correct", "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.4:\n    pass\n"
                         "a, b = map(int, input().split())\nprint(a + b)", Verdict.OK),
]


@pytest.mark.slow
def test_verdicts_are_stable_with_and_without_a_cpu_hog(sandbox):
    limits = Limits(cpu_seconds=1.5, memory_mb=512, max_processes=32)

    def round_of_verdicts() -> list[Verdict]:
        with ThreadPoolExecutor(len(STABILITY)) as pool:
            results = pool.map(lambda item: judge(item[1], [StdioTest("1 2\n", "3\n")], limits=limits,
                                                  sandbox=sandbox), STABILITY)
            return [r.verdict for r in results]

    expected = [verdict for _, _, verdict in STABILITY]
    quiet = [round_of_verdicts() for _ in range(3)]
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        loaded = [round_of_verdicts() for _ in range(3)]
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert quiet == [expected] * 3, quiet
    assert loaded == [expected] * 3, loaded


def test_fork_server_is_restarted_after_it_dies():
    import os
    import signal

    with Sandbox(max_sessions=2) as box:
        assert box.run("print(1)").stdout == "1\n"
        first = box._proc.pid
        os.kill(first, signal.SIGKILL)
        box._proc.wait()
        assert box.run("print(2)").stdout == "2\n" and box._proc.pid != first
