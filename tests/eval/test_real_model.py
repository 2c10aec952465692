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


def test_same_scores_through_qwq_serve_as_local_greedy(real_gguf, shared_data, tmp_path):
    """The acceptance check on the real model: greedy decoding through `qwq serve` + --endpoint gives the same
    texts, token counts and scores as the local engine (one engine, served after the local run)."""
    from qwq.engine.engine import Engine
    from qwq.eval.backends import SamplingConfig
    from qwq.eval.endpoint import EndpointBackend
    from qwq.eval.harness import EvalOptions, run_eval
    from qwq.eval.local import LocalEngineBackend
    from qwq.eval.tasks import build_task
    from qwq.serve.app import create_app
    from qwq.serve.service import ServeContext

    from .fake_openai import run_app

    engine = Engine.load(str(real_gguf), max_batch_size=4)
    tasks = [build_task("gsm8k", data_dir=shared_data), build_task("ifeval", data_dir=shared_data)]
    sampling = SamplingConfig(temperature=0.0, max_tokens=32)
    options = EvalOptions(n=1, limit=2, progress=False)
    local = run_eval(tasks, LocalEngineBackend(engine), sampling, tmp_path / "local", options)
    with run_app(create_app(ServeContext.from_engine(engine, "coder-0.5b"))) as url:
        remote = run_eval(tasks, EndpointBackend(url), sampling, tmp_path / "remote", options)
    for task in ("gsm8k", "ifeval"):
        a = [json.loads(x) for x in (tmp_path / "local" / task / "scored.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (tmp_path / "remote" / task / "scored.jsonl").read_text().splitlines()]
        assert [r["text"] for r in a] == [r["text"] for r in b]  # a ChatML model: no thinking to split off
        assert [(r["prompt_tokens"], r["completion_tokens"], r["correct"]) for r in a] == \
            [(r["prompt_tokens"], r["completion_tokens"], r["correct"]) for r in b]
        assert local["tasks"][task]["pass@1"] == remote["tasks"][task]["pass@1"]
