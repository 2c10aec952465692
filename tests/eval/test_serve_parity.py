"""The same eval through `qwq serve` (--endpoint) as on the local engine: with greedy decoding the thinking,
the answers, the token counts and the scores agree sample for sample. A thinking budget makes the tiny random
model close its thinking, so the reasoning/answer split is exercised on both paths."""

import json

import pytest

from qwq.eval.backends import SamplingConfig
from qwq.eval.endpoint import EndpointBackend
from qwq.eval.harness import EvalOptions, run_eval
from qwq.eval.local import LocalEngineBackend
from qwq.eval.tasks import build_task
from qwq.tokenizer.reasoning import split_reasoning

from .fake_openai import run_app

pytestmark = pytest.mark.timeout(600)


def _records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_endpoint_through_qwq_serve_matches_local_greedy(tiny_engine_factory, data_root, tmp_path):
    from qwq.serve.app import create_app
    from qwq.serve.service import ServeContext

    make, _ = tiny_engine_factory
    tasks = [build_task("gsm8k", data_dir=data_root)]
    sampling = SamplingConfig(temperature=0.0, max_tokens=120)
    options = EvalOptions(n=1, limit=3, budgets=(6,), progress=False)
    local = run_eval(tasks, LocalEngineBackend(make()), sampling, tmp_path / "local", options)
    app = create_app(ServeContext.from_engine(make(), "tiny-random"))
    with run_app(app) as url:
        remote = run_eval(tasks, EndpointBackend(url), sampling, tmp_path / "remote", options)
    assert remote["backend"]["model"] == "tiny-random"
    run = "gsm8k@think6"
    a = _records(tmp_path / "local" / run / "scored.jsonl")
    b = _records(tmp_path / "remote" / run / "scored.jsonl")
    assert len(a) == len(b) == 3
    closed = 0
    for x, y in zip(a, b):
        sx = split_reasoning(x["text"], x["starts_in_reasoning"])
        sy = split_reasoning(y["text"], y["starts_in_reasoning"])
        assert (sx.reasoning.strip(), sx.answer.strip(), sx.finished) == (sy.reasoning.strip(), sy.answer.strip(),
                                                                          sy.finished)
        assert x["finish_reason"] == y["finish_reason"]
        assert (x["prompt_tokens"], x["completion_tokens"]) == (y["prompt_tokens"], y["completion_tokens"])
        assert x["correct"] == y["correct"] and x["answer_key"] == y["answer_key"]
        closed += sx.finished
    assert closed == 3  # the budget closed every thinking
    for key in ("pass@1", "per_problem", "truncation_rate"):
        assert local["tasks"][run][key] == remote["tasks"][run][key]
