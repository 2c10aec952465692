"""Judge programs against test cases: stdin/stdout tests, function tests, custom checkers; per-test verdicts.

Stdio tests compare every line of the output, whitespace-normalised (runs of spaces collapse, trailing spaces and
trailing blank lines are ignored), optionally with a float tolerance per token. Function tests (Python only) run
the candidate and the checker as separate processes (see `harness.py`), so exiting early or patching builtins
cannot fake a pass. A SANDBOX_ERROR verdict means "cannot score", never "wrong".
"""

from __future__ import annotations

import json
import math
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from qwq.sandbox.harness import encode
from qwq.sandbox.languages import get_language
from qwq.sandbox.protocol import unb64
from qwq.sandbox.runner import Sandbox, Session, SessionError, default_sandbox
from qwq.sandbox.verdicts import Limits, RunResult, Verdict, classify, result_from_proc
from qwq.utils.errors import UsageError

HARNESS_SOURCE = Path(__file__).with_name("harness.py").read_bytes()


@dataclass(frozen=True)
class StdioTest:
    input: str
    output: str
    name: str = ""


@dataclass(frozen=True)
class FunctionCase:
    args: Sequence[Any] = ()
    expected: Any = None
    kwargs: dict = field(default_factory=dict)
    name: str = ""


@dataclass(frozen=True)
class FunctionTests:
    """`test_code` defining `check(candidate)` (HumanEval), or `cases` (LeetCode style); exactly one of them.

    `prelude`: trusted code the tests need, run in the checker before them (HumanEval: the prompt, which defines
    helpers such as `poly`). Arguments are passed by value as plain data.
    """

    entry_point: str
    test_code: str | None = None
    cases: Sequence[FunctionCase] = ()
    prelude: str = ""

    def __post_init__(self) -> None:
        if not self.entry_point or not all(part.isidentifier() for part in self.entry_point.split(".")):
            raise UsageError(f"FunctionTests.entry_point {self.entry_point!r} is not a (dotted) identifier")
        if (self.test_code is None) == (not self.cases):
            raise UsageError("FunctionTests needs exactly one of test_code (check(candidate)) or cases")

    @property
    def count(self) -> int:
        return 1 if self.test_code is not None else len(self.cases)


@dataclass(frozen=True)
class CheckerProgram:
    """A Python checker run in the sandbox as `checker.py INPUT EXPECTED OUTPUT`; exit 0 accepts, 1 rejects."""

    code: str


Checker = Callable[[str, str, str], "bool | tuple[bool, str]"]


@dataclass
class TestResult:
    index: int
    verdict: Verdict
    message: str = ""
    run: RunResult | None = None
    name: str = ""

    def to_dict(self) -> dict:
        return {"index": self.index, "name": self.name, "verdict": self.verdict.value, "message": self.message,
                "run": self.run.to_dict() if self.run is not None else None}


@dataclass
class JudgeResult:
    verdict: Verdict
    passed: int
    total: int
    tests: list[TestResult] = field(default_factory=list)
    compile: RunResult | None = None
    message: str = ""

    @property
    def per_test(self) -> list[TestResult]:
        return self.tests

    @property
    def score(self) -> float | None:
        """Fraction of tests passed; None when the sandbox could not score the program."""
        if self.verdict is Verdict.SANDBOX_ERROR:
            return None
        return self.passed / self.total if self.total else 0.0

    def to_dict(self) -> dict:
        return {"verdict": self.verdict.value, "passed": self.passed, "total": self.total, "score": self.score,
                "message": self.message, "tests": [t.to_dict() for t in self.tests],
                "compile": self.compile.to_dict() if self.compile is not None else None}

    @classmethod
    def from_dict(cls, data: dict) -> "JudgeResult":
        tests = [TestResult(t["index"], Verdict(t["verdict"]), t.get("message", ""),
                            RunResult.from_dict(t["run"]) if t.get("run") else None, t.get("name", ""))
                 for t in data.get("tests", [])]
        return cls(Verdict(data["verdict"]), int(data["passed"]), int(data["total"]), tests,
                   RunResult.from_dict(data["compile"]) if data.get("compile") else None, data.get("message", ""))


# ---------------------------------------------------------------- output comparison

def _tokens_match(expected: str, actual: str, tolerance: float | None) -> bool:
    if expected == actual:
        return True
    if tolerance is None:
        return False
    try:
        e, a = float(expected), float(actual)
    except ValueError:
        return False
    if math.isnan(e) or math.isnan(a):
        return math.isnan(e) and math.isnan(a)
    return math.isclose(a, e, rel_tol=tolerance, abs_tol=tolerance)


def compare_output(expected: str, actual: str, float_tolerance: float | None = None) -> tuple[bool, str]:
    """All lines, whitespace-normalised; (accepted, reason)."""
    exp_lines = [line.split() for line in expected.rstrip().splitlines()]
    act_lines = [line.split() for line in actual.rstrip().splitlines()]
    for number, (exp, act) in enumerate(zip(exp_lines, act_lines), start=1):
        if len(exp) != len(act) or not all(_tokens_match(e, a, float_tolerance) for e, a in zip(exp, act)):
            return False, f"line {number}: expected {' '.join(exp)[:200]!r}, got {' '.join(act)[:200]!r}"
    if len(exp_lines) != len(act_lines):
        return False, f"expected {len(exp_lines)} lines, got {len(act_lines)}"
    return True, ""


# ---------------------------------------------------------------- judging

def _overall(tests: list[TestResult], total: int, compile_result: RunResult | None = None) -> JudgeResult:
    passed = sum(t.verdict is Verdict.OK for t in tests)
    failures = [t for t in tests if t.verdict not in (Verdict.OK, Verdict.SANDBOX_ERROR)]
    if failures:
        verdict, message = failures[0].verdict, f"test {failures[0].index}: {failures[0].message}"
    elif any(t.verdict is Verdict.SANDBOX_ERROR for t in tests):
        first = next(t for t in tests if t.verdict is Verdict.SANDBOX_ERROR)
        verdict, message = Verdict.SANDBOX_ERROR, first.message
    elif passed < total:
        verdict, message = Verdict.SANDBOX_ERROR, "not every test ran"
    else:
        verdict, message = Verdict.OK, ""
    return JudgeResult(verdict, passed, total, tests, compile_result, message)


def judge(code: str, tests, *, language: str = "python", limits: Limits | None = None,
          stop_at_first_failure: bool = True, float_tolerance: float | None = None,
          checker: Checker | CheckerProgram | None = None, sandbox: Sandbox | None = None) -> JudgeResult:
    """Judge one program in a session of its own."""
    job = _Job(code, tests, language, limits, stop_at_first_failure, float_tolerance, checker)
    sandbox = sandbox or default_sandbox()
    try:
        with sandbox.session(disk_mb=job.limits.disk_mb) as session:
            return job.run(session)
    except SessionError as exc:
        return job.sandbox_error(exc)


class _Job:
    """One program and its tests, validated (UsageError) before anything runs."""

    def __init__(self, code: str, tests, language: str = "python", limits: Limits | None = None,
                 stop_at_first_failure: bool = True, float_tolerance: float | None = None,
                 checker: Checker | CheckerProgram | None = None):
        self.code, self.limits, self.stop, self.checker = code, limits or Limits(), stop_at_first_failure, checker
        self.lang, self.tests, self.total = _validated(tests, language, float_tolerance)
        self.tolerance = float_tolerance

    @property
    def is_function(self) -> bool:
        return isinstance(self.tests, FunctionTests)

    def key(self) -> str | None:
        """Identical jobs share one judging (None: a checker callable, which cannot be compared)."""
        if self.checker is not None and not isinstance(self.checker, CheckerProgram):
            return None
        return repr((self.code, self.tests, self.lang.name, self.limits, self.stop, self.tolerance, self.checker))

    def run(self, session: Session) -> JudgeResult:
        if self.is_function:
            return _judge_function(session, self.code, self.tests, self.limits, self.stop, self.tolerance)
        return _judge_stdio(session, self.code, self.tests, self.lang, self.limits, self.stop, self.tolerance,
                            self.checker)

    def sandbox_error(self, exc: Exception) -> JudgeResult:
        return JudgeResult(Verdict.SANDBOX_ERROR, 0, self.total, message=f"sandbox failure: {exc}")


def _validated(tests, language: str, float_tolerance):
    lang = get_language(language)
    if float_tolerance is not None and not (isinstance(float_tolerance, (int, float)) and float_tolerance >= 0):
        raise UsageError(f"float_tolerance must be a non-negative number, got {float_tolerance!r}")
    if isinstance(tests, FunctionTests):
        if lang.name != "python":
            raise UsageError(f"function tests need Python code, not {lang.name}")
        total = tests.count
    else:
        tests = list(tests)
        if not tests or not all(isinstance(t, StdioTest) for t in tests):
            raise UsageError("tests must be a non-empty list of StdioTest or a FunctionTests")
        total = len(tests)
    return lang, tests, total


def _write_harness(session: Session) -> None:
    if "harness.py" not in session.prepared:
        session.write({"harness.py": HARNESS_SOURCE}, where="judge", owner="root", mode=0o644)
        session.prepared.add("harness.py")


def _judge_stdio(session: Session, code, tests, lang, limits, stop, tolerance, checker) -> JudgeResult:
    session.write({lang.source_name: code})
    compiled = session.compile(lang)
    if compiled is not None and not compiled.ok:
        return JudgeResult(compiled.verdict, 0, len(tests), [], compiled, compiled.message)
    if isinstance(checker, CheckerProgram):
        session.write({"checker.py": checker.code}, where="judge", owner="checker", mode=0o600)
    results: list[TestResult] = []
    for index, test in enumerate(tests):
        run = session.run_argv(lang.run_command(limits.memory_mb), limits, test.input, lang)
        verdict, message = run.verdict, run.message
        if verdict is Verdict.OK:
            accepted, message = _check(session, checker, test, run.stdout, tolerance)
            verdict = accepted
        results.append(TestResult(index, verdict, message, run, test.name))
        if verdict is not Verdict.OK and stop:
            break
    return _overall(results, len(tests), compiled)


def _check(session: Session, checker, test: StdioTest, actual: str, tolerance) -> tuple[Verdict, str]:
    if checker is None:
        ok, reason = compare_output(test.output, actual, tolerance)
        return (Verdict.OK if ok else Verdict.WRONG_ANSWER), reason
    if isinstance(checker, CheckerProgram):
        session.write({"input.txt": test.input, "expected.txt": test.output, "output.txt": actual},
                      where="judge", owner="checker", mode=0o600)
        j = session.paths["judge"]
        argv = [sys.executable, "-I", f"{j}/checker.py", f"{j}/input.txt", f"{j}/expected.txt", f"{j}/output.txt"]
        report = session.step([session.program(argv, Limits(cpu_seconds=10), role="checker", cwd="judge")])
        proc = report["procs"][0]
        if proc.get("exit_code") in (0, 1) and not proc.get("killed"):
            note = unb64(proc.get("stdout")).decode(errors="replace").strip()[:500]
            return (Verdict.OK if proc["exit_code"] == 0 else Verdict.WRONG_ANSWER), note
        verdict, why = classify(proc, Limits(cpu_seconds=10))
        err = unb64(proc.get("stderr")).decode(errors="replace")[-500:]
        return Verdict.SANDBOX_ERROR, f"the checker program failed ({verdict.value}: {why}) {err}".strip()
    try:
        outcome = checker(test.input, test.output, actual)
    except Exception as exc:  # a broken checker cannot score the program
        return Verdict.SANDBOX_ERROR, f"checker raised {type(exc).__name__}: {exc}"
    ok, reason = outcome if isinstance(outcome, tuple) else (bool(outcome), "")
    return (Verdict.OK if ok else Verdict.WRONG_ANSWER), reason


def _judge_function(session: Session, code: str, tests: FunctionTests, limits: Limits, stop: bool,
                    tolerance) -> JudgeResult:
    session.write({"solution.py": code})
    _write_harness(session)
    session.write({"tests.py": tests.test_code or "", "prelude.py": tests.prelude}, where="judge",
                  owner="checker", mode=0o600)
    j, s = session.paths["judge"], session.paths["sandbox"]
    mode = "check" if tests.test_code is not None else "cases"
    encoded = [{"args": encode(list(c.args)), "kwargs": encode(dict(c.kwargs)), "expected": encode(c.expected),
                "name": c.name} for c in tests.cases]
    total, results, first = tests.count, [], 0
    wall = limits.effective_wall_seconds
    while first < total:
        remaining = total - first
        spec = {"mode": mode, "entry_point": tests.entry_point, "first_case": first, "cases": encoded[first:], "cpu_seconds": limits.cpu_seconds,
                "wall_seconds": wall, "float_tolerance": tolerance, "stop_at_first_failure": stop}
        session.write({"spec.json": json.dumps(spec)}, where="judge", owner="checker", mode=0o600)
        candidate = session.program([sys.executable, "-I", f"{j}/harness.py", "candidate", f"{s}/solution.py",
                                     tests.entry_point], limits)
        budget = (remaining + 1) * limits.cpu_seconds
        candidate["limits"].update(cpu_seconds=budget, wall_seconds=None, wall_cap_seconds=None)
        checker_limits = Limits(cpu_seconds=30 + remaining, memory_mb=2048, stdout_bytes=1 << 20)
        checker = session.program([sys.executable, "-I", "-S", f"{j}/harness.py", "checker", f"{j}/spec.json"],
                                  checker_limits, role="checker", cwd="judge")
        step_wall = (remaining + 1) * (4 * wall + 2 * limits.cpu_seconds) + 30
        checker["limits"].update(wall_seconds=step_wall, wall_cap_seconds=step_wall)
        checker.update(peer=0, fds={"3": "req.w", "4": "resp.r", "5": "report.w", "6": "secret.r"})
        candidate.update(fds={"3": "req.r", "4": "resp.w"})
        nonce = secrets.token_hex(16)
        report = session.step([candidate, checker], pipes=("req", "resp"), report=True, secret=nonce.encode(),
                              main=1)
        lines, attested = _parse_report(unb64(report["report"]), nonce)
        cand_proc, check_proc = report["procs"]
        cand_run = result_from_proc(cand_proc, limits)
        progressed = False
        for line in lines:
            index = int(line.get("case", -1))
            if not first <= index < total or any(r.index == index for r in results):
                continue
            verdict = line.get("verdict")
            if verdict == "CRASHED":  # the candidate process died: its own report says why
                died = cand_run.verdict
                verdict = died.value if died not in (Verdict.OK, Verdict.SANDBOX_ERROR) else "RUNTIME_ERROR"
            if verdict not in Verdict.__members__:
                verdict = "SANDBOX_ERROR"
            results.append(TestResult(index, Verdict(verdict), str(line.get("message", ""))[:4000],
                                      cand_run, _case_name(tests, index)))
            progressed = True
            if line.get("load_error"):  # nothing can pass if the solution does not load
                results.extend(TestResult(i, Verdict(verdict), "solution did not load", None, _case_name(tests, i))
                               for i in range(index + 1, total))
        if not attested:
            checker_run = result_from_proc(check_proc, checker_limits)
            note = f"the checker did not finish ({checker_run.verdict.value}: {checker_run.message}) " \
                   f"{checker_run.stderr[-1000:]}".strip()
            done = {r.index for r in results}
            results.extend(TestResult(i, Verdict.SANDBOX_ERROR, note, None, _case_name(tests, i))
                           for i in range(first, total) if i not in done)
            break
        results.sort(key=lambda r: r.index)
        if not progressed or (results and results[-1].verdict is not Verdict.OK and stop):
            break
        first = max(r.index for r in results) + 1
    results.sort(key=lambda r: r.index)
    return _overall(results, total)


def _case_name(tests: FunctionTests, index: int) -> str:
    return tests.cases[index].name if tests.cases and index < len(tests.cases) else ""


def _parse_report(raw: bytes, nonce: str) -> tuple[list[dict], bool]:
    lines, attested = [], False
    for text in raw.decode(errors="replace").splitlines():
        try:
            item = json.loads(text)
        except ValueError:
            continue
        if isinstance(item, dict) and "done" in item:
            attested = item["done"] == nonce
        elif isinstance(item, dict) and not attested:
            lines.append(item)
    return lines, attested


def judge_many(items: Sequence[dict], *, workers: int = 4, sandbox: Sandbox | None = None) -> list[JudgeResult]:
    """Judge many programs concurrently; each item holds judge()'s keyword arguments plus `code` and `tests`."""
    from qwq.sandbox.batch import judge_batch

    return judge_batch(items, workers=workers, sandbox=sandbox)
