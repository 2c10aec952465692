"""`qwq sandbox run|health|serve` from the command line (real subprocesses, as users and scripts call it)."""

from __future__ import annotations

import json
import subprocess
import sys

from qwq.sandbox.runner import LAYERS


def qwq(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "qwq", "sandbox", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_run_json_reports_verdict_output_and_isolation(tmp_path):
    program = tmp_path / "sum.py"
    program.write_text("import sys\nprint(sum(map(int, sys.stdin.read().split())))\n")
    stdin = tmp_path / "in.txt"
    stdin.write_text("1 2 3\n")
    out = qwq("run", str(program), "--stdin", str(stdin), "--json")
    assert out.returncode == 0, out.stderr
    body = json.loads(out.stdout)
    assert body["verdict"] == "OK" and body["stdout"] == "6\n" and body["language"] == "python"
    assert set(body["isolation"]["layers"]) == set(LAYERS) and "cpu_seconds" in body and "peak_memory_mb" in body


def test_run_human_output_and_exit_code_for_a_failed_verdict(tmp_path):
    program = tmp_path / "loop.cpp"
    program.write_text("int main(){volatile int x=0; for(;;) x++;}\n")
    out = qwq("run", str(program), "--cpu-seconds", "0.5", "--memory-mb", "256")
    assert out.returncode == 1
    assert out.stdout.startswith("verdict: TIME_LIMIT") and "peak memory" in out.stdout


def test_run_with_explicit_language_and_bad_inputs(tmp_path):
    program = tmp_path / "prog.txt"
    program.write_text("print('hi')")
    assert qwq("run", str(program), "--lang", "python").stdout.splitlines()[0] == "verdict: OK"
    unknown = qwq("run", str(program))
    assert unknown.returncode == 2 and "--lang" in unknown.stderr and "Traceback" not in unknown.stderr
    missing = qwq("run", str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    bad_limit = qwq("run", str(program), "--lang", "python", "--cpu-seconds", "0")
    assert bad_limit.returncode == 2 and "cpu_seconds" in bad_limit.stderr


def test_health_lists_layers():
    out = qwq("health", "--json")
    assert out.returncode == 0 and set(json.loads(out.stdout)["layers"]) == set(LAYERS)


def test_serve_defaults_to_loopback():
    from argparse import ArgumentParser

    from qwq.sandbox.cli import add_args

    parser = ArgumentParser()
    add_args(parser)
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.workers >= 1
