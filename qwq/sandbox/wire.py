"""JSON forms of sandbox requests, shared by the HTTP service and the HTTP client (no web framework needed here).

Function-test arguments and expected values use the harness's tagged encoding so tuples, sets, bytes, int dict
keys and non-finite floats survive the trip.
"""

from __future__ import annotations

from qwq.sandbox.harness import decode, encode
from qwq.sandbox.judge import CheckerProgram, FunctionCase, FunctionTests, StdioTest
from qwq.sandbox.verdicts import Limits, RunResult, Verdict
from qwq.utils.errors import UsageError


def tests_to_wire(tests) -> dict:
    if isinstance(tests, FunctionTests):
        return {"function": {"entry_point": tests.entry_point, "test_code": tests.test_code, "prelude": tests.prelude,
                             "cases": [{"args": encode(list(c.args)), "kwargs": encode(dict(c.kwargs)),
                                        "expected": encode(c.expected), "name": c.name} for c in tests.cases]}}
    return {"stdio": [{"input": t.input, "output": t.output, "name": t.name} for t in tests]}


def tests_from_wire(data: dict):
    if not isinstance(data, dict) or len(data) != 1 or next(iter(data)) not in ("stdio", "function"):
        raise UsageError('tests must be {"stdio": [{"input", "output"}...]} or {"function": {...}}')
    if "stdio" in data:
        items = data["stdio"]
        if not isinstance(items, list) or not items:
            raise UsageError("tests.stdio must be a non-empty list")
        try:
            return [StdioTest(str(t["input"]), str(t["output"]), str(t.get("name", ""))) for t in items]
        except (KeyError, TypeError):
            raise UsageError("every stdio test needs string fields 'input' and 'output'") from None
    spec = data["function"]
    if not isinstance(spec, dict) or "entry_point" not in spec:
        raise UsageError("tests.function needs an entry_point")
    # "plain": true takes args/kwargs/expected as ordinary JSON (LiveCodeBench files), else the tagged encoding
    unpack = (lambda value, default: default if value is None else value) if spec.get("plain") else \
        (lambda value, default: default if value is None else decode(value))
    try:
        cases = [FunctionCase(args=tuple(unpack(c.get("args"), ())), kwargs=dict(unpack(c.get("kwargs"), {})),
                              expected=unpack(c.get("expected"), None), name=str(c.get("name", "")))
                 for c in spec.get("cases") or []]
    except (ValueError, TypeError, AttributeError, IndexError) as exc:
        raise UsageError(f"tests.function.cases: {exc}") from None
    return FunctionTests(str(spec["entry_point"]), spec.get("test_code"), tuple(cases), str(spec.get("prelude") or ""))


def limits_from_wire(data: dict | None) -> Limits | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        raise UsageError("limits must be an object")
    return Limits.from_dict(data)


def limits_to_wire(limits: Limits | None) -> dict | None:
    if limits is None:
        return None
    return {k: v for k, v in limits.__dict__.items()}


def checker_to_wire(checker) -> str | None:
    if checker is None:
        return None
    if isinstance(checker, CheckerProgram):
        return checker.code
    raise UsageError("a checker callable cannot travel over HTTP; pass CheckerProgram(code) instead")


def checker_from_wire(code: str | None):
    return CheckerProgram(code) if code else None


# ---------------------------------------------------------------- SandboxFusion's /run_code shape

SANDBOX_FUSION_LANGUAGES = {"python": "python", "python3": "python", "cpp": "cpp", "nodejs": "js", "js": "js",
                            "javascript": "js"}


def _command_result(result: RunResult) -> dict:
    if result.verdict in (Verdict.TIME_LIMIT, Verdict.WALL_TIMEOUT):
        status = "TimeLimitExceeded"
    elif result.verdict is Verdict.SANDBOX_ERROR:
        status = "Error"
    else:
        status = "Finished"
    code = result.exit_code if result.signal is None else -int(result.signal)
    return {"status": status, "execution_time": result.wall_seconds, "return_code": code,
            "stdout": result.stdout, "stderr": result.stderr}


def run_code_response(result: RunResult, files: dict[str, str] | None = None) -> dict:
    """SandboxFusion's RunCodeResponse, plus our `verdict` (extra fields are ignored by its clients)."""
    compiled = result.compile
    if result.verdict is Verdict.SANDBOX_ERROR:
        status = "SandboxError"
    elif result.verdict is Verdict.OK:
        status = "Success"
    else:
        status = "Failed"
    nothing_ran = result.verdict is Verdict.COMPILE_ERROR or (
        result.verdict is Verdict.SANDBOX_ERROR and result.exit_code is None and result.signal is None)
    return {"status": status, "message": result.message,
            "compile_result": _command_result(compiled) if compiled is not None else None,
            "run_result": None if nothing_ran else _command_result(result),
            "executor_pod_name": None, "files": files or {}, "verdict": result.verdict.value}
