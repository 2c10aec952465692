"""`qwq verify ...` from the command line: verdict lines, JSON details, exit code 2 on bad input."""

import json
import subprocess
import sys

import pytest


def qwq(*args, stdin=None):
    out = subprocess.run([sys.executable, "-m", "qwq", "verify", *args], capture_output=True, text=True,
                         input=stdin, timeout=120)
    return out.returncode, out.stdout, out.stderr


def test_math_true_false_and_json_details():
    assert qwq("math", "--gold", "\\frac{1}{2}", "--pred", "\\boxed{0.5}")[:2] == (0, "true\n")
    assert qwq("math", "--gold", "\\frac{1}{2004!}", "--pred", "\\boxed{\\frac{1}{2006!}}")[1] == "false\n"
    code, out, _ = qwq("math", "--gold", "Hence \\boxed{3}", "--pred", "hmm</think>The answer is 3.", "--json")
    detail = json.loads(out)
    assert code == 0 and detail["verdict"] == "true"
    assert detail["pred_answer"] == "3" and detail["gold_answer"] == "3" and detail["reason"]


def test_math_none_when_the_gold_cannot_be_parsed_and_thinking_modes():
    assert qwq("math", "--gold", "\\frac{", "--pred", "\\boxed{1}")[1] == "none\n"
    # forced thinking mode: without </think> the completion never finished, so it has no answer
    assert qwq("math", "--gold", "1", "--pred", "\\boxed{1}", "--thinking", "yes")[1] == "false\n"


def test_math_reads_files_and_stdin(tmp_path):
    pred = tmp_path / "pred.txt"
    pred.write_text("so \\boxed{12}")
    assert qwq("math", "--gold", "12", "--pred-file", str(pred))[1] == "true\n"
    assert qwq("math", "--gold", "12", "--pred-file", "-", stdin="\\boxed{13}")[1] == "false\n"


def test_choice_and_rules():
    assert qwq("choice", "--gold", "B", "--pred", '{"answer": "B"}')[1] == "true\n"
    code, out, _ = qwq("rules", "--pred", "hmm</think>Hello world.", "--instructions", '["punctuation:no_comma"]',
                       "--max-length", "100", "--buffer", "10", "--json")
    detail = json.loads(out)
    assert code == 0 and detail["verdict"] == "true"
    assert detail["checks"]["ifeval"]["strict"] == [True]
    assert detail["checks"]["overlong"]["penalty"] == 0.0
    assert qwq("rules", "--pred", "no end of thinking", "--thinking", "yes")[1].startswith("false")


@pytest.mark.parametrize("args, message", [
    (("math", "--gold", "1"), "--pred or --pred-file is required"),
    (("math", "--gold", "1", "--pred", "1", "--pred-file", "x"), "not both"),
    (("math", "--gold", "1", "--pred-file", "/nonexistent/file"), "cannot read --pred-file"),
    (("rules", "--pred", "x", "--instructions", '["nope:x"]'), "unknown instruction id"),
    (("rules", "--pred", "x", "--instructions", "not json"), "must be JSON"),
    (("rules", "--pred", "x", "--language", "klingon"), "unknown language"),
])
def test_bad_input_is_one_line_and_exit_code_2(args, message):
    code, out, err = qwq(*args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_code_from_files(tmp_path):
    tests = tmp_path / "tests.json"
    tests.write_text(json.dumps([{"input": "3\n", "output": "6\n"}, {"input": "4\n", "output": "8\n"}]))
    right, partial = tmp_path / "right.py", tmp_path / "partial.py"
    right.write_text("print(int(input()) * 2)\n")
    partial.write_text("n = int(input())\nprint(6 if n == 3 else 0)\n")
    assert qwq("code", "--code", str(right), "--tests", str(tests))[1] == "true\n"
    code, out, _ = qwq("code", "--code", str(partial), "--tests", str(tests), "--fraction", "--json")
    detail = json.loads(out)
    assert code == 0 and detail["verdict"] == "false" and detail["reward"] == 0.5 and detail["passed"] == 1
    code, _, err = qwq("code", "--code", str(right), "--tests", str(tmp_path / "missing.json"))
    assert code == 2 and "cannot read tests file" in err
