"""The pipeline's procedural tasks as benchmarks (held-out split, the task's own reward), and reasoning-gym."""

import pytest

from qwq.eval.backends import SamplingConfig, ScriptedBackend
from qwq.eval.harness import EvalOptions, run_eval
from qwq.eval.tasks import build_task

pytestmark = pytest.mark.timeout(300)


def test_procedural_task_scores_with_its_reward(tmp_path):
    task = build_task("proc:arith", options={"count": 6, "problem_seed": 1})
    items = task.items()
    assert task.kind == "math" and len(items) == 6
    from qwq.rl.evaluate import EVAL_SEED

    assert build_task("proc:arith").seed == EVAL_SEED  # the pipeline's held-out problems by default
    rl_task = task.rl_task
    assert all(rl_task.split_of(item.fields["example"]) == "heldout" for item in items)
    right = {item.id for item in items[:3]}

    def script(r):
        gold = next(i for i in items if i.id == r.item_id).fields["example"].fields["answer"]
        return f"Step by step.\n</think>\n\n\\boxed{{{gold if r.item_id in right else 'nope'}}}"

    summary = run_eval([task], ScriptedBackend(script), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=2, progress=False))
    s = summary["tasks"]["proc:arith"]
    assert s["pass@1"] == pytest.approx(0.5) and s["kind"] == "math"
    assert (tmp_path / "out" / "proc_arith" / "scored.jsonl").is_file()


def test_a_model_without_thinking_is_read_as_a_plain_answer():
    task = build_task("proc:arith", options={"count": 2})
    items = task.items()
    gold = items[0].fields["example"].fields["answer"]
    scores = task.score(items[:1] * 2, [f"\\boxed{{{gold}}}"] * 2, [False, True])
    assert scores[0].correct is True  # no thinking prompt: the text is the answer
    assert scores[1].correct is False  # a QwQ-style model that never closed its thinking has no answer


def test_reasoning_gym_needs_its_package():
    task = build_task("rg:basic_arithmetic")
    reason = task.unavailable()
    try:
        import reasoning_gym  # noqa: F401
    except ImportError:
        assert "reasoning-gym" in reason
    assert "dataset name" in build_task("rg:").unavailable()
