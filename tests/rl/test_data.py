"""Tasks: deterministic problems, disjoint held-out splits, a teacher that is right at slip 0 and wrong when it
slips, rewards through the verifiers, benchmark files as tasks, clear errors."""

import random

import pytest

from qwq.rl.data import DatasetError, build_task, columns, gsm8k_task, math500_task, stable_fraction
from qwq.utils.errors import ConfigError


@pytest.mark.parametrize("name", ["arith", "algebra", "code", "instruct"])
def test_splits_are_disjoint_and_deterministic(name):
    task = build_task(name)
    train = task.examples("train", 150, seed=0)
    heldout = task.examples("heldout", 40, seed=0)
    assert len({e.key for e in train}) == 150 and len({e.key for e in heldout}) == 40
    assert not {e.key for e in train} & {e.key for e in heldout}
    assert [e.key for e in task.examples("train", 150, seed=0)] == [e.key for e in train]
    assert [e.key for e in task.examples("train", 150, seed=1)] != [e.key for e in train]
    assert all(task.split_of(e) == "heldout" for e in heldout)
    # the split is a property of the problem, not of the seed
    assert all(task.split_of(e) == "train" for e in task.examples("train", 50, seed=7))


def test_stable_fraction_does_not_depend_on_hash_seed():
    assert stable_fraction("arith:7 + 3 * 4") == stable_fraction("arith:7 + 3 * 4")
    assert 0 <= stable_fraction("x") < 1


@pytest.mark.parametrize("name", ["arith", "algebra", "instruct"])
def test_teacher_is_right_without_slips_and_wrong_when_it_slips(name):
    task = build_task(name)
    examples = task.examples("train", 60, seed=3)
    rng = random.Random(0)
    good = [task.teacher(e, rng, 0.0) for e in examples]
    bad = [task.teacher(e, rng, 1.0) for e in examples]
    assert task.reward(good, examples) == [1.0] * len(examples)
    slipped = [(b, e) for b, g, e in zip(bad, good, examples) if b != g]
    assert len(slipped) > len(examples) // 3  # most families have a characteristic slip
    assert task.reward([b for b, _ in slipped], [e for _, e in slipped]) == [0.0] * len(slipped)
    for text in good:  # QwQ's format: the thinking closes, then the answer
        assert "</think>\n\n" in text and not text.startswith("<think>")


def test_code_teacher_through_the_sandbox():
    task = build_task("code")
    examples = [e for e in task.examples("train", 40, seed=5)][:8]
    rng = random.Random(1)
    good = [task.teacher(e, rng, 0.0) for e in examples]
    bad = [task.teacher(e, rng, 1.0) for e in examples]
    assert task.reward(good, examples) == [1.0] * len(examples)
    differing = [(b, e) for b, g, e in zip(bad, good, examples) if b != g]
    assert differing and task.reward([b for b, _ in differing], [e for _, e in differing]) == [0.0] * len(differing)
    assert "```python\ndef " in good[0]


def test_code_heldout_covers_every_family():
    """Unique-problem splits starve a family with a small problem space; every code family keeps at least half of
    its uniform share of the held-out problems (sum_range and multiples once had 6 of 150)."""
    from collections import Counter

    from qwq.rl.tasks_code import CODE_FAMILIES

    counts = Counter(e.meta["family"] for e in build_task("code").examples("heldout", 150, seed=12345))
    assert set(counts) == set(CODE_FAMILIES)
    assert min(counts.values()) >= 150 / len(CODE_FAMILIES) / 2, counts


def test_arithmetic_follows_precedence():
    task = build_task("arith", {"families": ["a+b*c"]})
    example = task.examples("train", 1, seed=0)[0]
    a, b, c = (example.meta["values"][k] for k in "abc")
    assert example.fields["answer"] == str(a + b * c)
    assert example.question.startswith(f"Compute {a} + {b} * {c}.")


def test_columns_are_per_sample_lists_with_the_prompt():
    task = build_task("instruct")
    examples = task.examples("train", 3, seed=0)
    cols = columns(examples)
    assert set(cols) == {"instruction_id_list", "kwargs", "prompt"}
    assert all(len(v) == 3 for v in cols.values())


def test_benchmark_files_as_tasks(shared_data):
    gsm = gsm8k_task(shared_data / "gsm8k" / "test.jsonl")
    heldout = gsm.examples("heldout", 5, seed=0)
    assert len(heldout) == 5 and all(e.fields["answer"] for e in heldout)
    assert gsm.reward([f"x</think>\n\n\\boxed{{{heldout[0].fields['answer']}}}"], heldout[:1]) == [1.0]
    with pytest.raises(DatasetError):
        gsm.examples("train", 5, seed=0)  # benchmark files are all held out by default
    split = build_task("gsm8k", {"path": str(shared_data / "gsm8k" / "test.jsonl"), "heldout_fraction": 0.2})
    assert len(split.pool("train")) > len(split.pool("heldout")) > 0
    math500 = math500_task(shared_data / "math500" / "test.jsonl")
    assert math500.examples("heldout", 3, seed=0)[0].fields["answer"]


def test_bad_task_inputs_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        build_task("nope")
    with pytest.raises(ConfigError, match="needs a `path`"):
        build_task("gsm8k")
    with pytest.raises(DatasetError, match="not found"):
        gsm8k_task(tmp_path / "missing.jsonl").examples("heldout", 1, 0)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q"}\n')
    with pytest.raises(DatasetError, match=r"bad.jsonl:1: missing field\(s\) answer"):
        gsm8k_task(bad).examples("heldout", 1, 0)
    with pytest.raises(DatasetError, match="too small"):
        build_task("algebra", {"families": ["k*x=v"]}).examples("train", 5000, 0)


def test_reasoning_gym_binarised():
    pytest.importorskip("reasoning_gym", reason="reasoning-gym not installed (optional extra)")
    task = build_task("rg:basic_arithmetic", {"size": 60, "config": {"min_terms": 2, "max_terms": 2}})
    train, heldout = task.pool("train"), task.pool("heldout")
    assert train and heldout and not {e.key for e in train} & {e.key for e in heldout}
    ex = heldout[0]
    gold = ex.fields["answer"]
    assert task.reward([f"ok</think>\n\n\\boxed{{{gold}}}", "ok</think>\n\n\\boxed{123456789}", "no close"],
                       [ex, ex, ex]) == [1.0, 0.0, 0.0]
    with pytest.raises(DatasetError):
        build_task("rg:no_such_family")
