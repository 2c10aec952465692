"""Code correctness: take the program out of a completion and judge it in the sandbox (qwq.sandbox.client).

    verify_code(completion, tests, language="python") -> CodeResult
    verify_code_batch(completions, tests_per_sample, ...) -> [CodeResult]     # judged as one sandbox batch
    CodeResult.score(fraction=False) -> 1.0 / 0.0 (all tests pass), or passed/total, or None

The program is the last fenced code block of the answer (after `</think>`), preferring blocks tagged with the
language; code only inside the thinking does not count. A SANDBOX_ERROR verdict (the sandbox could not run
the program: infrastructure, not the candidate) gives None, never 0. The sandbox compares every output line and
runs function tests in a separate checker process, so exiting before the asserts, printing only the first
expected line or flooding the output all fail there (see the canaries in tests/verify/test_code.py).
In process, a batch is judged by `workers` reused sandbox sessions with zygote-forked programs
(qwq.sandbox.batch): the verdicts of judging each program alone at a fraction of the cost.

Tests may be given as data (`parse_test_spec`): a list of {"input", "output"} cases, {"inputs": [...],
"outputs": [...]}, {"entry_point", "test"[, "prompt"]} (HumanEval: `test` defines check(candidate)), or
{"entry_point", "cases": [{"args", "kwargs", "expected"}]}; or directly as StdioTest lists / FunctionTests.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from qwq.sandbox.client import SandboxClient
from qwq.sandbox.judge import FunctionCase, FunctionTests, JudgeResult, StdioTest
from qwq.sandbox.languages import ALIASES
from qwq.sandbox.verdicts import Limits, Verdict
from qwq.utils.errors import UsageError
from qwq.verify.extract import answer_region
from qwq.verify.registry import RewardError, completion_texts, field_values, register_reward

MAX_CODE_CHARS = 100_000
_FENCE = re.compile(r"```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


@dataclass(frozen=True)
class CodeResult:
    verdict: str  # the sandbox verdict (OK, WRONG_ANSWER, ..., SANDBOX_ERROR) or NO_CODE
    passed: int
    total: int
    code: str | None
    reason: str

    @property
    def correct(self) -> bool | None:
        if self.verdict == Verdict.SANDBOX_ERROR.value:
            return None
        return self.verdict == Verdict.OK.value and self.total > 0 and self.passed == self.total

    def score(self, fraction: bool = False) -> float | None:
        """1/0 for all tests passing (or the passed fraction); None when the sandbox could not score."""
        if self.correct is None:
            return None
        if fraction:
            return self.passed / self.total if self.total else 0.0
        return float(self.correct)

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "correct": self.correct, "passed": self.passed, "total": self.total,
                "code": self.code, "reason": self.reason}


def extract_code(text: str, language: str = "python") -> str | None:
    """The last fenced block tagged with `language` (or an alias), else the last untagged or unknown block."""
    wanted = ALIASES.get(language.lower(), language.lower())
    tagged, untagged = [], []
    for tag, body in _FENCE.findall(text):
        tag_lang = ALIASES.get(tag.lower())
        if tag_lang == wanted:
            tagged.append(body)
        elif not tag or tag_lang is None:
            untagged.append(body)
    blocks = tagged or untagged
    if not blocks or not blocks[-1].strip():
        return None
    return blocks[-1]


def parse_test_spec(data: Any):
    """JSON-like test specs -> list[StdioTest] or FunctionTests (UsageError naming the problem otherwise)."""
    if isinstance(data, FunctionTests) or (isinstance(data, (list, tuple)) and data
                                           and all(isinstance(t, StdioTest) for t in data)):
        return data
    if isinstance(data, str):
        try:
            data = json.loads(data)
        except ValueError as exc:
            raise UsageError(f"tests given as a string must be JSON: {exc}") from None
    if isinstance(data, list):
        try:
            return [StdioTest(str(t["input"]), str(t["output"]), str(t.get("name", ""))) for t in data]
        except (KeyError, TypeError):
            raise UsageError("every stdio test needs 'input' and 'output'") from None
    if isinstance(data, dict):
        if "inputs" in data and "outputs" in data:
            inputs, outputs = data["inputs"], data["outputs"]
            if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
                raise UsageError("'inputs' and 'outputs' must be lists of the same length")
            return [StdioTest(str(i), str(o)) for i, o in zip(inputs, outputs)]
        if "entry_point" in data:
            if "test" in data or "test_code" in data:
                return FunctionTests(str(data["entry_point"]), test_code=str(data.get("test", data.get("test_code"))),
                                     prelude=str(data.get("prompt", data.get("prelude", "")) or ""))
            if "cases" in data:
                try:
                    cases = tuple(FunctionCase(args=tuple(c.get("args", ())), kwargs=dict(c.get("kwargs", {})),
                                               expected=c.get("expected"), name=str(c.get("name", "")))
                                  for c in data["cases"])
                except (AttributeError, TypeError):
                    raise UsageError("every function case must be an object with args / kwargs / expected") from None
                return FunctionTests(str(data["entry_point"]), cases=cases)
    raise UsageError("tests must be a list of {input, output}, {inputs, outputs}, {entry_point, test} or "
                     f"{{entry_point, cases}}; got {type(data).__name__}")


def load_tests_file(path: str | Path):
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read tests file {path}: {exc.strerror}") from None
    try:
        return parse_test_spec(json.loads(text))
    except ValueError as exc:
        raise UsageError(f"tests file {path} is not JSON: {exc}") from None


_client_lock = threading.Lock()
_default_client: SandboxClient | None = None


def default_client() -> SandboxClient:
    """The in-process sandbox client shared by the code verifiers (started on first use)."""
    global _default_client
    with _client_lock:
        if _default_client is None:
            _default_client = SandboxClient()
        return _default_client


def _program(completion: str, language: str, starts_in_reasoning: bool) -> tuple[str | None, str]:
    region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
    if not region.finished:
        return None, "the thinking never closed: no program"
    code = extract_code(region.text, language)
    if code is None:
        return None, "no fenced code block in the answer"
    if len(code) > MAX_CODE_CHARS:
        return None, f"the program is longer than {MAX_CODE_CHARS} characters"
    return code, ""


def _result(code: str, judged: JudgeResult) -> CodeResult:
    reason = judged.message or ("all tests passed" if judged.verdict is Verdict.OK else judged.verdict.value)
    return CodeResult(judged.verdict.value, judged.passed, judged.total, code, reason)


def verify_code_batch(completions: Sequence[str], tests: Sequence[Any], *, language: str = "python",
                      limits: Limits | None = None, starts_in_reasoning: bool = True,
                      stop_at_first_failure: bool = True, client: SandboxClient | None = None,
                      workers: int = 2) -> list[CodeResult]:
    if len(completions) != len(tests):
        raise ValueError(f"{len(completions)} completions for {len(tests)} test sets")
    client = client or default_client()
    results: list[CodeResult | None] = [None] * len(completions)
    jobs, where = [], []
    for i, (completion, spec) in enumerate(zip(completions, tests)):
        parsed = parse_test_spec(spec)
        total = parsed.count if isinstance(parsed, FunctionTests) else len(parsed)
        code, why = _program(completion, language, starts_in_reasoning)
        if code is None:
            results[i] = CodeResult("NO_CODE", 0, total, None, why)
            continue
        jobs.append({"code": code, "tests": parsed, "language": language, "limits": limits,
                     "stop_at_first_failure": stop_at_first_failure})
        where.append(i)
    if jobs:
        for i, job, judged in zip(where, jobs, client.judge_many(jobs, workers=workers)):
            results[i] = _result(job["code"], judged)
    return results  # type: ignore[return-value]


def verify_code(completion: str, tests: Any, *, language: str = "python", limits: Limits | None = None,
                starts_in_reasoning: bool = True, stop_at_first_failure: bool = True,
                client: SandboxClient | None = None) -> CodeResult:
    return verify_code_batch([completion], [tests], language=language, limits=limits,
                             starts_in_reasoning=starts_in_reasoning, stop_at_first_failure=stop_at_first_failure,
                             client=client)[0]


@register_reward("code_tests")
def code_tests_reward(completions: Sequence[Any], *, fraction: bool = False, language: str = "python",
                      limits: dict | None = None, sandbox_url: str | None = None, workers: int = 2,
                      starts_in_reasoning: bool = True, **fields) -> list[float | None]:
    """Field `tests` (one spec per completion, see `parse_test_spec`). `fraction=True` rewards the passed
    fraction (all tests run); otherwise 1 only when every test passes (judging stops at the first failure)."""
    texts = completion_texts(completions)
    specs = field_values(fields, "tests", len(texts))
    try:
        run_limits = Limits.from_dict(limits) if limits else None
    except UsageError as exc:
        raise RewardError(f"code_tests: {exc}") from None
    client = SandboxClient(url=sandbox_url) if sandbox_url else None
    try:
        results = verify_code_batch(texts, specs, language=language, limits=run_limits,
                                    starts_in_reasoning=starts_in_reasoning, stop_at_first_failure=not fraction,
                                    client=client, workers=workers)
    finally:
        if client is not None:
            client.close()
    return [r.score(fraction=fraction) for r in results]
