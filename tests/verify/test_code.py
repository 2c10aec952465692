"""The code verifier: program extraction, test specs, sandbox judging, None on sandbox errors, and canaries."""

import pytest

from qwq.sandbox.client import SandboxClient
from qwq.sandbox.judge import FunctionTests, StdioTest
from qwq.sandbox.verdicts import Limits
from qwq.utils.errors import UsageError
from qwq.verify.code import extract_code, parse_test_spec, verify_code, verify_code_batch
from qwq.verify.registry import build_reward

LIMITS = Limits(cpu_seconds=2, wall_seconds=3, memory_mb=512)
DOUBLE = [{"input": "3\n", "output": "6\n"}, {"input": "5\n", "output": "10\n"}, {"input": "0\n", "output": "0\n"}]
TWO_LINES = [{"input": "2\n", "output": "2\n4\n"}]
ADD_FN = {"entry_point": "add", "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"
                                        "    assert candidate(-1, 1) == 0\n"}


def answer(code: str, lang: str = "python") -> str:
    return f"Let me write it.\n</think>\n\nHere is the program:\n```{lang}\n{code}\n```\n"


def test_extract_code_prefers_the_language_block_and_takes_the_last():
    text = "```text\nnot code\n```\n```python\nfirst()\n```\n```py\nsecond()\n```\n```cpp\nint main(){}\n```"
    assert extract_code(text, "python") == "second()\n"
    assert extract_code(text, "c++") == "int main(){}\n"
    assert extract_code("```\nuntagged()\n```", "python") == "untagged()\n"
    assert extract_code("no fences at all", "python") is None
    assert extract_code("```python\n   \n```", "python") is None


def test_parse_test_spec_forms_and_errors():
    assert parse_test_spec(DOUBLE)[1] == StdioTest("5\n", "10\n")
    assert parse_test_spec({"inputs": ["1"], "outputs": ["2"]}) == [StdioTest("1", "2")]
    fn = parse_test_spec({**ADD_FN, "prompt": "def add(a, b):\n"})
    assert isinstance(fn, FunctionTests) and fn.entry_point == "add" and fn.prelude.startswith("def add")
    cases = parse_test_spec({"entry_point": "f", "cases": [{"args": [1], "expected": 2}]})
    assert cases.count == 1 and cases.cases[0].args == (1,)
    assert parse_test_spec('[{"input": "1", "output": "1"}]') == [StdioTest("1", "1")]
    for bad in ({"inputs": ["1"], "outputs": []}, [{"in": "1"}], 42, "not json"):
        with pytest.raises(UsageError):
            parse_test_spec(bad)


def test_right_wrong_and_partial_programs():
    right = answer("print(int(input()) * 2)")
    wrong = answer("print(int(input()) + 2)")  # passes only the 0 -> ... no: 0+2 != 0; passes none
    partial = answer("n = int(input())\nprint(6 if n == 3 else (10 if n == 5 else 1))")
    results = verify_code_batch([right, wrong, partial], [DOUBLE] * 3, limits=LIMITS, stop_at_first_failure=False)
    assert [r.correct for r in results] == [True, False, False]
    assert results[0].score() == 1.0 and results[1].score() == 0.0
    assert results[2].score(fraction=True) == pytest.approx(2 / 3) and results[2].score() == 0.0
    assert results[1].verdict == "WRONG_ANSWER"


def test_function_tests_and_cpp():
    ok = verify_code(answer("def add(a, b):\n    return a + b"), ADD_FN, limits=LIMITS)
    assert ok.correct is True
    cpp = answer("#include <iostream>\nint main(){long n; std::cin >> n; std::cout << 2*n << std::endl;}", "cpp")
    assert verify_code(cpp, DOUBLE, language="cpp").correct is True


def test_sandbox_error_is_none_not_zero():
    unreachable = SandboxClient(url="http://127.0.0.1:9", busy_retries=0, timeout=5)
    result = verify_code(answer("print(1)"), [{"input": "", "output": "1"}], client=unreachable)
    assert result.verdict == "SANDBOX_ERROR" and result.correct is None and result.score() is None
    unreachable.close()


def test_the_reward_binary_and_fraction():
    completions = [answer("print(int(input()) * 2)"),
                   answer("n = int(input())\nprint(6 if n == 3 else (10 if n == 5 else 1))")]
    binary = build_reward([{"name": "code_tests", "params": {"limits": {"cpu_seconds": 2}}}])
    assert binary(completions, tests=[DOUBLE, DOUBLE]) == [1.0, 0.0]
    fraction = build_reward([{"name": "code_tests", "params": {"fraction": True}}])
    assert fraction(completions, tests=[DOUBLE, DOUBLE]) == pytest.approx([1.0, 2 / 3])


CANARIES = {
    "exit(0) before the asserts": (answer("import sys\nsys.exit(0)\ndef add(a, b):\n    return a - b"), ADD_FN),
    "os._exit(0) inside the function": (answer("import os\ndef add(a, b):\n    os._exit(0)"), ADD_FN),
    "an object equal to everything": (answer("class Any:\n    def __eq__(self, other):\n        return True\n"
                                             "def add(a, b):\n    return Any()"), ADD_FN),
    "patching assert via builtins": (answer("import builtins\nbuiltins.AssertionError = type('X', (Exception,), {})"
                                            "\ndef add(a, b):\n    return 0"), ADD_FN),
    "printing only the first expected line": (answer("print(input())"), TWO_LINES),
    "exit(0) before printing": (answer("import sys\nsys.exit(0)"), DOUBLE),
    "giant output": (answer("import sys\nwhile True:\n    sys.stdout.write('6\\n' * 10000)"), DOUBLE),
    "infinite loop": (answer("while True:\n    pass"), DOUBLE),
    "code only inside the thinking": ("```python\nprint(int(input()) * 2)\n```\nstill thinking", DOUBLE),
    "no code block": ("done</think>print(int(input()) * 2)", DOUBLE),
}


def test_code_canaries_score_zero():
    names = list(CANARIES)
    results = verify_code_batch([CANARIES[n][0] for n in names], [CANARIES[n][1] for n in names], limits=LIMITS)
    scores = {n: (r.score(), r.verdict) for n, r in zip(names, results)}
    assert all(score == 0.0 for score, _ in scores.values()), scores


def test_the_batched_reward_equals_judging_each_program_alone():
    """code_tests_reward judges through judge_batch (reused sessions, zygote-forked programs); its scores must be
    those of judging every program in a session of its own, canaries included."""
    from qwq.sandbox.judge import judge
    from qwq.verify.code import _program, code_tests_reward, default_client

    twice = {"entry_point": "twice", "cases": [{"args": [1], "expected": 2}, {"args": [4], "expected": 8},
                                               {"args": [-3], "expected": -6}]}
    bodies = ["return 2 * x", "return x + 2", "return x * x", "raise ValueError(x)", "return [x][1]",
              "return 2 * x if x > 0 else 0", "return 2.0 * x", "import os; os._exit(0)"]
    completions = [answer(f"def twice(x):\n    {body}") for body in bodies]
    completions += [answer("def twice(x)\n    return 2 * x"), answer("print(1)"), "no code at all"]
    completions += [CANARIES[name][0] for name in CANARIES if CANARIES[name][1] is ADD_FN]
    specs = [twice] * (len(completions) - 4) + [ADD_FN] * 4
    rewards = code_tests_reward(completions, tests=specs, limits={"cpu_seconds": 2, "wall_seconds": 3})
    alone = []
    for text, spec in zip(completions, specs):
        code, _ = _program(text, "python", True)
        judged = None if code is None else judge(code, parse_test_spec(spec), limits=LIMITS,
                                                 sandbox=default_client().sandbox)
        alone.append(0.0 if judged is None else float(judged.passed == judged.total and judged.score == 1.0))
    assert rewards == alone
    assert rewards[:2] == [1.0, 0.0] and sum(rewards) == 2.0  # 2 * x and 2.0 * x (2.0 == 2 in Python)
