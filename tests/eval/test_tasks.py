"""Benchmark loaders: counts, golds, the model-card prompts, and the protocol check against QwQ's template."""

import json

import jinja2
import pytest

from qwq.eval.local import PromptRenderer
from qwq.eval.tasks import MATH_INSTRUCTION, TaskError, TaskUnavailable, build_task
from qwq.eval.tasks.gpqa import GPQADiamondTask, option_order
from qwq.eval.tasks.livecodebench import parse_lcb_tests
from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate


@pytest.mark.parametrize("name,count", [("aime24", 30), ("aime25", 30), ("math500", 500), ("gsm8k", 1319),
                                        ("ifeval", 541), ("humaneval", 164)])
def test_benchmark_sizes(shared_data, name, count):
    assert len(build_task(name, data_dir=shared_data).items()) == count


def test_math_golds_and_prompts(shared_data):
    gsm = build_task("gsm8k", data_dir=shared_data).items(2)
    assert [i.fields["answer"] for i in gsm] == ["18", "3"]
    assert gsm[0].messages[0]["content"].endswith("\n" + MATH_INSTRUCTION)
    math500 = build_task("math500", data_dir=shared_data).items(1)[0]
    assert math500.fields["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    aime = build_task("aime25", data_dir=shared_data).items()
    assert aime[0].fields["answer"] == "70"
    for item in aime:  # the data already ends with the instruction: it is not added twice
        assert item.messages[0]["content"].count(MATH_INSTRUCTION) == 1


def test_aime_prompt_is_the_qwq_template_rendering_of_the_model_card_prompt(shared_data):
    """Protocol check: what the local backend sends for an AIME item is exactly QwQ-32B's chat template applied
    to the model-card prompt (problem + math instruction), rendered independently with plain jinja2 and by hand."""
    row = json.loads((shared_data / "qwq-eval" / "aime24.jsonl").read_text().splitlines()[0])
    problem = row["prompt"].removesuffix("\n" + MATH_INSTRUCTION)
    assert problem != row["prompt"]
    model_card_prompt = f"{problem}\n{MATH_INSTRUCTION}"
    item = build_task("aime24", data_dir=shared_data).items(1)[0]
    official = (shared_data / "qwq-32b" / "chat_template.jinja").read_text()
    sent = PromptRenderer(ChatTemplate(official)).text(item.messages)
    by_hand = f"<|im_start|>user\n{model_card_prompt}<|im_end|>\n<|im_start|>assistant\n<think>\n"
    plain = jinja2.Environment().from_string(official).render(
        messages=[{"role": "user", "content": model_card_prompt}], add_generation_prompt=True)
    assert sent == by_hand == plain
    assert PromptRenderer(ChatTemplate(QWQ_TEMPLATE)).text(item.messages) == by_hand  # the built-in copy agrees
    text, ids, starts = PromptRenderer(ChatTemplate(official)).render(item.messages)
    assert starts and ids == []


def test_ifeval_items_and_unknown_instruction(tmp_path):
    (tmp_path / "qwq-eval").mkdir()
    bad = {"prompt": "x", "instruction_id_list": ["nonsense:thing"], "kwargs": [{}]}
    (tmp_path / "qwq-eval" / "ifeval.jsonl").write_text(json.dumps(bad) + "\n")
    with pytest.raises(TaskError, match="unsupported instruction id"):
        build_task("ifeval", data_dir=tmp_path).items()


def test_missing_data_names_the_flag(tmp_path):
    task = build_task("aime24", data_dir=tmp_path)
    assert "--data-dir" in task.unavailable()
    with pytest.raises(TaskUnavailable, match="aime24.jsonl"):
        task.items()
    with pytest.raises(TaskError, match="unknown task"):
        build_task("aime99")


def test_bad_jsonl_line_is_named(tmp_path):
    (tmp_path / "gsm8k").mkdir()
    (tmp_path / "gsm8k" / "test.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{oops\n')
    with pytest.raises(TaskError, match=r"test.jsonl:2: invalid JSON"):
        build_task("gsm8k", data_dir=tmp_path).items()


def test_livecodebench_refuses_without_tests_and_says_why(shared_data, tmp_path):
    task = build_task("livecodebench", data_dir=shared_data, options={"lcb_tests": tmp_path / "nowhere"})
    reason = task.unavailable()
    assert "not shipped" in reason and "--lcb-tests" in reason
    with pytest.raises(TaskUnavailable):
        task.items()


def test_livecodebench_with_user_tests(data_root):
    task = build_task("livecodebench", data_dir=data_root)
    assert task.unavailable() is None
    items = task.items()
    specs = task.tests_for(items)
    assert specs[0] == {"inputs": ["1 2\n", "10 -3\n"], "outputs": ["3\n", "7\n"]}
    assert specs[1] == {"entry_point": "Solution.add", "cases": [{"args": [1, 2], "expected": 3},
                                                               {"args": [[1], [2, 3]], "expected": [1, 2, 3]}]}
    # a damaged file is caught by the MD5 of the prompt file
    path = data_root / "qwq-eval" / "livecodebench_v5_tests" / "0.json"
    path.write_text(json.dumps({"input_output": json.dumps({"inputs": ["1 2\n"], "outputs": ["4\n"]})}))
    with pytest.raises(TaskError, match="MD5"):
        task.tests_for(items[:1])
    path.unlink()
    with pytest.raises(TaskUnavailable, match="1 of 2 test files are missing"):
        build_task("livecodebench", data_dir=data_root).items()


def test_parse_lcb_tests_rejects_garbage():
    with pytest.raises(TaskError, match="input_output"):
        parse_lcb_tests({"input_output": "not json"}, "f.json")
    with pytest.raises(TaskError, match="not a LiveCodeBench test file"):
        parse_lcb_tests({"something": 1}, "f.json")


def test_gpqa_from_a_package(fake_gpqa_package):
    task = GPQADiamondTask(package=fake_gpqa_package)
    assert task.unavailable() is None
    items = task.items()
    assert [i.id for i in items] == ["rec0", "rec1", "rec2", "rec3"]
    first = items[0]
    prompt = first.messages[0]["content"]
    assert prompt.startswith("What is 2 + 2?\n\nA) ")
    assert prompt.endswith('Please show your choice in the `answer` field with only the choice letter, e.g., '
                           '`"answer": "C"`.')
    gold = first.fields["answer"]
    assert f"\n{gold}) 4\n" in prompt  # the gold letter points at the right option
    assert option_order("rec0") == option_order("rec0")  # fixed permutation per record
    assert GPQADiamondTask(package=fake_gpqa_package).items()[0].messages == first.messages


def test_gpqa_missing_package_is_explained():
    reason = GPQADiamondTask(package="no_such_dataset_package").unavailable()
    assert "not installed" in reason


def test_real_gpqa_if_installed():
    """Structure only: nothing of the questions is printed or compared."""
    task = build_task("gpqa")
    if task.unavailable():
        pytest.skip(task.unavailable())
    items = task.items()
    assert len(items) == 198
    letters = [i.fields["answer"] for i in items]
    assert set(letters) == set("ABCD") and max(letters.count(x) for x in "ABCD") < 80
    assert all(i.messages[0]["content"].count("\nD) ") == 1 for i in items)


def test_humaneval_prompt_shows_the_stub():
    item = build_task("humaneval").items(1)[0]
    assert item.id == "HumanEval/0"
    assert "def has_close_elements" in item.messages[0]["content"]
    assert item.fields["tests"]["entry_point"] == "has_close_elements"
