"""The tool_mod task: problems, teacher traces, reward, splits (qwq.agent.tool_task), and its trainer settings."""

import random
import re
from collections import Counter

import pytest

from qwq.agent.calculator import calculator_tool
from qwq.agent.episode import run_episode, scripted_generate
from qwq.agent.tool_task import MOD_SLIPS, ToolArithmeticTask, ToolModTask
from qwq.rl.data import think_completion
from qwq.rl.modeling import train_tiny_tokenizer
from qwq.tokenizer import QWQ_ADDED_TOKENS
from qwq.tokenizer.chat import ChatTemplate
from qwq.tokenizer.toolcall import parse_tool_calls


class ArithmeticSandbox:
    """Stands in for the sandbox client: runs `print(<arithmetic>)` or `r = <arithmetic>` then `print(r)` (the only
    programs the teacher writes)."""

    def __init__(self):
        self.codes = []

    def run(self, code, **kw):
        from types import SimpleNamespace

        from qwq.agent.calculator import evaluate

        self.codes.append(code)
        found = re.fullmatch(r"r = (.*)\nprint\(r\)", code) or re.fullmatch(r"print\((.*)\)", code)
        expression = found.group(1)
        return SimpleNamespace(verdict="OK", stdout=f"{evaluate(expression)}\n", stderr="", message="")


@pytest.fixture(scope="module")
def byte_tok():
    return train_tiny_tokenizer([""], 256 + len(QWQ_ADDED_TOKENS))


def play(task, example, turns, tok, tools):
    return run_episode(scripted_generate(tok, turns), tok, task.messages(example), tools, max_steps=3,
                       max_new_tokens=10_000, max_total_tokens=10_000, chat_template=ChatTemplate.for_tokenizer(tok))


def test_problems_have_fixed_length_operands_and_a_uniform_nonzero_remainder():
    task = ToolModTask()
    examples = task.examples("train", 1200, 0)
    assert examples == task.examples("train", 1200, 0)  # the same list for the same arguments
    for ex in examples[:200]:
        a, b, m = ex.meta["a"], ex.meta["b"], ex.meta["m"]
        assert m == 7 and 100 <= a <= 999 and 100 <= b <= 999 and a % 7 and b % 7
        assert ex.fields["answer"] == str(a * b % 7)
        assert ex.question.startswith(f"What is ({a} * {b}) % 7?\n") and "\\boxed{}" in ex.question
    counts = Counter(ex.fields["answer"] for ex in examples)
    assert set(counts) == {"1", "2", "3", "4", "5", "6"}
    # no constant answer does much better than chance (1/6): the no-tool baseline has nothing to exploit
    assert max(counts.values()) / len(examples) < 0.21 and task.chance_accuracy == pytest.approx(1 / 6)
    five = ToolModTask(digits=5, modulus=5).examples("train", 300, 1)
    assert all(len(str(ex.meta["a"])) == 5 and ex.meta["b"] % 5 for ex in five)
    assert {ex.fields["answer"] for ex in five} == {"1", "2", "3", "4"}


def test_heldout_split_is_disjoint_from_train():
    task = ToolModTask()
    train = {ex.key for ex in task.examples("train", 2000, 0)}
    heldout = {ex.key for ex in task.examples("heldout", 300, 12345)}
    assert len(heldout) == 300 and not train & heldout
    assert all(task.split_of(ex) == "heldout" for ex in task.examples("heldout", 50, 7))


def test_teacher_trace_is_a_python_call_whose_printed_digit_is_boxed(byte_tok):
    task = ToolModTask(sandbox_client=ArithmeticSandbox())
    ex = task.examples("train", 1, 3)[0]
    a, b = ex.meta["a"], ex.meta["b"]
    turns = task.teacher_turns(ex, random.Random(0), slip_rate=0.0)
    first = turns[0]
    parsed = parse_tool_calls(first.split("</think>", 1)[1])
    assert not parsed.errors and len(parsed.tool_calls) == 1
    call = parsed.tool_calls[0]
    assert call.name == "python" and call.arguments == {"code": f"r = ({a} * {b}) % 7\nprint(r)"}
    ep = play(task, ex, turns, byte_tok, task.tools())
    assert ep.stop_reason == "answer" and ep.n_tool_calls == 1 and ep.n_tool_errors == 0
    assert task.sandbox_client.codes == [f"r = ({a} * {b}) % 7\nprint(r)"]
    assert ep.final_text.endswith(f"\\boxed{{{a * b % 7}}}")
    assert task.reward([ep.final_text], [ex]) == [1.0]


def test_calculator_trace_and_teacher_slips(byte_tok):
    task = ToolModTask(tool="calculator")
    examples = task.examples("train", 60, 1)
    seen = Counter()
    rng = random.Random(4)
    for ex in examples:
        a, b = ex.meta["a"], ex.meta["b"]
        for kind in MOD_SLIPS:
            turns = task.teacher_turns(ex, rng, slip_rate=1.0, slips=[kind])
            calls = parse_tool_calls(turns[0].split("</think>", 1)[1]).tool_calls
            if kind == "guess":  # no tool, a remainder from 1..6
                assert len(turns) == 1 and not calls
                assert re.search(r"\\boxed\{([1-6])\}$", turns[0])
                continue
            expression = calls[0].arguments["expression"]
            if kind == "wrong_op":
                assert expression == f"({a} + {b}) % 7"
            else:  # miscopy: one digit of the first operand changed, length kept
                got = re.fullmatch(r"\((\d+) \* (\d+)\) % 7", expression)
                wrong = got.group(1)
                assert got.group(2) == str(b) and len(wrong) == 3 and wrong[0] != "0"
                assert sum(x != y for x, y in zip(wrong, str(a))) == 1
            ep = play(task, ex, turns, byte_tok, [calculator_tool()])
            seen[kind, task.reward([ep.final_text], [ex])[0]] += 1
    # the slips that call the tool are scored on what it printed: mostly wrong (a coincidence can be right)
    assert seen["wrong_op", 0.0] > 40 and seen["miscopy", 0.0] > 40
    with pytest.raises(ValueError, match="subset"):
        task.teacher_turns(examples[0], rng, 1.0, slips=["no_tool"])
    # slip_rate 0 writes the intended trace whatever the slips
    clean = task.teacher_turns(examples[0], rng, 0.0, slips=["guess"])
    assert len(clean) == 2 and "calculator" in clean[0]


def test_expression_style_call_repeats_the_question_tokens_and_words_style_is_kept(byte_tok):
    """The default question holds `(a * b) % 7` and the call repeats it token for token (a plain copy); the older
    wording ("the remainder when a * b is divided by 7", call `print(a * b % 7)`) stays available as style="words"."""
    tok = train_tiny_tokenizer([f"What is ({n} * {n + 3}) % 7?" for n in range(100, 400)] * 4, 420)
    task = ToolModTask(sandbox_client=ArithmeticSandbox())
    for ex in task.examples("train", 20, 2):
        a, b = ex.meta["a"], ex.meta["b"]
        span = tok.encode(f" ({a} * {b}) % 7")
        call = task.teacher_turns(ex, random.Random(0))[0].split("</think>", 1)[1]
        question, code = tok.encode(ex.question), tok.encode(call)
        assert any(question[i:i + len(span)] == span for i in range(len(question)))
        assert any(code[i:i + len(span)] == span for i in range(len(code)))
    words = ToolModTask(style="words", sandbox_client=ArithmeticSandbox())
    ex = words.examples("train", 1, 3)[0]
    a, b = ex.meta["a"], ex.meta["b"]
    assert ex.question.startswith(f"What is the remainder when {a} * {b} is divided by 7?\n")
    turns = words.teacher_turns(ex, random.Random(0))
    assert parse_tool_calls(turns[0].split("</think>", 1)[1]).tool_calls[0].arguments == {
        "code": f"print({a} * {b} % 7)"}
    ep = play(words, ex, turns, byte_tok, words.tools())
    assert words.reward([ep.final_text], [ex]) == [1.0]
    wrong_op = words.teacher_turns(ex, random.Random(0), 1.0, ["wrong_op"])[0]
    assert f"({a} + {b}) % 7" in wrong_op


def test_think_variants_vary_the_thought_before_the_call_not_the_call():
    task = ToolModTask(think_variants=4, sandbox_client=ArithmeticSandbox())
    thoughts = Counter()
    for ex in task.examples("train", 40, 5):
        first = task.teacher_turns(ex, random.Random(ex.key), 0.0)[0]
        thought, call = first.split("</think>", 1)
        thoughts[thought] += 1
        assert parse_tool_calls(call).tool_calls[0].arguments == {
            "code": f"r = ({ex.meta['a']} * {ex.meta['b']}) % 7\nprint(r)"}
    assert len(thoughts) == 4 and all("python" in t for t in thoughts)
    one = ToolModTask()
    assert len({one.teacher_turns(ex, random.Random(ex.key), 0.0)[0].split("</think>")[0]
                for ex in one.examples("train", 10, 5)}) == 1
    with pytest.raises(ValueError, match="think_variants"):
        ToolModTask(think_variants=9)


def test_reward_reads_only_the_last_box_of_the_final_answer():
    task = ToolModTask()
    ex = task.examples("heldout", 1, 0)[0]
    right, wrong = ex.fields["answer"], str(int(ex.fields["answer"]) % 6 + 1)
    cases = [
        (think_completion("t", f"\\boxed{{{right}}}"), 1.0),
        (think_completion("t", f"\\boxed{{ {right} }}"), 1.0),
        (think_completion("t", f"\\boxed{{{wrong}}} then \\boxed{{{right}}}"), 1.0),
        (think_completion("t", f"\\boxed{{{right}}} then \\boxed{{{wrong}}}"), 0.0),
        (think_completion(f"\\boxed{{{right}}}", "no box"), 0.0),  # a box in the thinking does not count
        (f"\\boxed{{{right}}}", 0.0),  # the thinking never ended
        (think_completion("t", "\\boxed{x}"), 0.0),
    ]
    assert task.reward([c for c, _ in cases], [ex] * len(cases)) == [score for _, score in cases]


def test_direct_turn_is_the_no_tool_demonstration():
    task = ToolModTask()
    ex = task.examples("train", 1, 0)[0]
    direct = task.direct_turn(ex)
    assert not parse_tool_calls(direct.split("</think>", 1)[1]).tool_calls
    assert task.reward([direct], [ex]) == [1.0]
    assert task.reward([task.direct_turn(ex, int(ex.fields["answer"]) % 6 + 1)], [ex]) == [0.0]


def test_bad_task_arguments_are_refused():
    for kwargs in ({"digits": 1}, {"modulus": 2}, {"modulus": 9}, {"tool": "shell"}, {"style": "prose"}):
        with pytest.raises(ValueError):
            ToolModTask(**kwargs)
    with pytest.raises(ValueError):
        ToolArithmeticTask(min_digits=6, max_digits=5)


def test_trainer_task_and_slip_settings():
    from qwq.agent.tool_train import ToolRLConfig, make_task, teacher_slips
    from qwq.utils.errors import UsageError

    assert ToolRLConfig().task == "tool_mod"
    assert isinstance(make_task(ToolRLConfig(digits=4, modulus=5)), ToolModTask)
    assert make_task(ToolRLConfig(digits=4)).digits == 4
    assert make_task(ToolRLConfig()).style == "expression" and make_task(ToolRLConfig(style="words")).style == "words"
    with pytest.raises(UsageError, match="style"):
        make_task(ToolRLConfig(style="prose"))
    assert isinstance(make_task(ToolRLConfig(task="tool_arith")), ToolArithmeticTask)
    assert teacher_slips(ToolRLConfig()) == list(MOD_SLIPS)
    assert teacher_slips(ToolRLConfig(task="tool_arith")) == ["wrong_op"]
    assert teacher_slips(ToolRLConfig(slips=["guess"])) == ["guess"]
    with pytest.raises(UsageError, match="subset"):
        teacher_slips(ToolRLConfig(slips=["no_tool"]))
    with pytest.raises(UsageError, match="unknown task"):
        ToolRLConfig(task="tool_div").check()
    with pytest.raises(UsageError, match="tool_mod"):
        make_task(ToolRLConfig(modulus=1))
