import subprocess
import sys


def run(*args, **kw):
    return subprocess.run([sys.executable, "-m", "qwq", *args], capture_output=True, text=True, timeout=300, **kw)


def test_help_lists_commands_and_imports_no_torch():
    code = ("import sys; from qwq.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'qwq --help imported torch'\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "info" in out.stdout


def test_unknown_command_exits_2_with_one_line():
    out = run("no-such-command")
    assert out.returncode == 2
    assert len(out.stderr.strip().splitlines()) == 1
    assert "no-such-command" in out.stderr


def test_bad_option_exits_2():
    out = run("info", "--no-such-flag")
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
