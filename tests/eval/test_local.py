"""The local-engine backend on a tiny random Qwen2 with a QwQ-style tokenizer: prompts are the chat template's
rendering, token counts are exact, per-sample seeds make sampling reproducible across runs and batch layouts."""

import json

import pytest

from qwq.eval.backends import SamplingConfig, split_token_counts
from qwq.eval.harness import EvalOptions, run_eval
from qwq.eval.tasks import build_task

pytestmark = pytest.mark.timeout(600)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_local_backend_records(tiny_engine_factory, data_root, tmp_path):
    from qwq.eval.local import LocalEngineBackend
    from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate

    make, tok = tiny_engine_factory
    task = build_task("gsm8k", data_dir=data_root)
    backend = LocalEngineBackend(make(), description={"model": "random-tiny"})
    summary = run_eval([task], backend, SamplingConfig(max_tokens=12, temperature=1.0, seed=3), tmp_path / "a",
                       EvalOptions(n=2, limit=3, progress=False))
    records = _records(tmp_path / "a" / "gsm8k" / "scored.jsonl")
    assert len(records) == 6 and summary["tasks"]["gsm8k"]["complete"]
    items = {i.id: i for i in task.items(3)}
    for r in records:
        prompt = ChatTemplate(QWQ_TEMPLATE).render(items[r["item_id"]].messages, add_generation_prompt=True)
        assert r["prompt_tokens"] == len(tok.encode(prompt))
        assert r["starts_in_reasoning"] is True
        assert r["completion_tokens"] == r["reasoning_tokens"] + r["answer_tokens"] <= 12
        assert r["token_counts"] == "exact"
        assert (r["finish_reason"] == "length") == (r["completion_tokens"] == 12)
        if not r["thinking_finished"]:
            assert r["correct"] is False  # a thought never finished has no answer
    assert summary["backend"] == {"backend": "local", "model": "random-tiny"}


def test_sampling_is_reproducible_across_runs_and_batch_sizes(tiny_engine_factory, data_root, tmp_path):
    from qwq.eval.local import LocalEngineBackend

    make, _ = tiny_engine_factory
    task = build_task("gsm8k", data_dir=data_root)
    texts = []
    for run, batch in (("a", 4), ("b", 1), ("c", 4)):
        seed = 9 if run != "c" else 10
        run_eval([task], LocalEngineBackend(make(batch)), SamplingConfig(max_tokens=8, temperature=1.0, seed=seed),
                 tmp_path / run, EvalOptions(n=2, limit=2, progress=False))
        texts.append({(r["item_id"], r["sample"]): r["text"] for r in _records(tmp_path / run / "gsm8k" / "samples.jsonl")})
    assert texts[0] == texts[1]  # same seeds, different batch layout: same samples
    assert texts[0] != texts[2]


def test_split_token_counts():
    close, open_ = 99, 98
    assert split_token_counts([5, 6, close, 7], close, True) == (3, 1)
    assert split_token_counts([5, 6, 7], close, True) == (3, 0)  # never closed: all thinking
    assert split_token_counts([5, 6, 7], close, False, open_) == (0, 3)  # no thinking prompt, no <think>
    assert split_token_counts([open_, 5, close, 7, 8], close, False, open_) == (3, 2)
    assert split_token_counts([5, 6], None, True) == (2, 0)
