"""`qwq eval` on real models (weights tier): the packaged Qwen2.5-Coder-0.5B, and the tiny pipeline model when
`qwq pipeline` has produced it. Kept short: two GSM8K problems, one greedy sample, 64 tokens."""

import json

import pytest

from qwq.cli import main as qwq_main

pytestmark = [pytest.mark.weights, pytest.mark.timeout(900)]


def _eval(model, shared_data, out, extra=()):
    return qwq_main(["eval", "--tasks", "gsm8k", "-m", str(model), "--limit", "2", "--n", "1", "--max-tokens", "64",
                     "--temperature", "0", "--out", str(out), "--data-dir", str(shared_data), "--no-progress",
                     *extra])


def test_qwq_eval_on_the_real_05b_model(real_gguf, shared_data, tmp_path, capsys, monkeypatch):
    from qwq.model.loading import load_chat_template, load_tokenizer, resolve
    from qwq.eval.tasks import build_task

    out = tmp_path / "eval"
    assert _eval(real_gguf, shared_data, out) == 0, capsys.readouterr()
    records = [json.loads(line) for line in (out / "gsm8k" / "scored.jsonl").read_text().splitlines()]
    assert [r["item_id"] for r in records] == ["0", "1"]
    tokenizer = load_tokenizer(resolve(str(real_gguf)))
    template = load_chat_template(tokenizer)
    for record, item in zip(records, build_task("gsm8k", data_dir=shared_data).items(2)):
        prompt = template.render(item.messages, add_generation_prompt=True)
        assert record["prompt_tokens"] == len(tokenizer.encode(prompt))
        assert record["starts_in_reasoning"] is False  # a ChatML model: it answers directly, no <think>
        assert 0 < record["completion_tokens"] <= 64 and record["text"].strip()
        assert record["correct"] in (True, False)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["backend"]["backend"] == "local" and summary["sampling"]["temperature"] == 0.0
    assert summary["tasks"]["gsm8k"]["problems"] == 2
    report = (out / "report.md").read_text()
    assert "| gsm8k | 1 | 2 |" in report and (out / "charts" / "accuracy.png").is_file()
    # the same settings again: nothing to generate, so the model is not even loaded; the same numbers come out
    def no_load(*args, **kwargs):
        raise AssertionError("the model was loaded for a run with nothing to generate")

    monkeypatch.setattr("qwq.engine.engine.Engine.load", no_load)
    assert _eval(real_gguf, shared_data, out) == 0
    assert json.loads((out / "summary.json").read_text())["tasks"]["gsm8k"]["pass@1"] == summary["tasks"]["gsm8k"]["pass@1"]


def test_qwq_eval_on_the_tiny_pipeline_model(shared_data, tmp_path, capsys):
    from qwq.model.loading import resolve
    from qwq.utils.errors import QwqError

    try:
        if not resolve("tiny").has_weights:
            pytest.skip("the tiny pipeline model has no weights yet (run `qwq pipeline`)")
    except QwqError as exc:
        pytest.skip(f"the tiny pipeline model is not there yet: {exc}")
    out = tmp_path / "tiny"
    assert _eval("tiny", shared_data, out) == 0, capsys.readouterr()
    records = [json.loads(line) for line in (out / "gsm8k" / "scored.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["starts_in_reasoning"] for r in records)  # QwQ's template
    assert (out / "report.md").is_file()
