"""ProcessEngines: the requests of a call split over worker processes that share the model's memory."""

from __future__ import annotations

import copy

import pytest
import torch

from engine_fixtures import make_model
from qwq.engine.engine import Engine
from qwq.engine.sampling import SamplingParams
from qwq.engine.workers import EngineWorkerError, ProcessEngines

PROMPTS = [[5, 17, 42, 9], [3, 3, 3], [100, 7, 64, 12, 8, 19], [250], [31, 41, 59, 26, 53], [2, 71, 82]]


def _params(i: int) -> SamplingParams:
    if i % 3 == 0:
        return SamplingParams(temperature=0.0, max_new_tokens=12)
    return SamplingParams(temperature=1.0, top_p=0.9, max_new_tokens=12, n=3, seed=1000 + i)


def _tokens(results) -> list:
    return [[s.token_ids for s in r.samples] for r in results]


@pytest.fixture(scope="module")
def shared_model():
    return make_model(seed=3)


@pytest.fixture(scope="module")
def engines(shared_model):
    with ProcessEngines(shared_model, processes=2, max_batch_size=16) as pool:
        yield pool


def test_results_equal_one_engine_in_prompt_order(engines, shared_model):
    params = [_params(i) for i in range(len(PROMPTS))]
    want = Engine(copy.deepcopy(shared_model), max_batch_size=16).generate(PROMPTS, params)
    got = engines.generate(PROMPTS, params)
    assert engines.processes == 2
    assert engines.worker_cpu_seconds > 0  # the workers report the CPU time they spent
    assert _tokens(got) == _tokens(want)
    assert [r.prompt_token_ids for r in got] == PROMPTS
    assert [s.finish_reason for r in got for s in r.samples] == [s.finish_reason for r in want for s in r.samples]


def test_workers_see_weights_changed_in_place(engines, shared_model):
    params = [_params(i) for i in range(len(PROMPTS))]
    before = _tokens(engines.generate(PROMPTS, params))
    original = shared_model.lm_head.weight.detach().clone()
    try:
        with torch.no_grad():
            shared_model.lm_head.weight.mul_(-1.0)  # in place, as an optimizer step writes
        engines.weights_changed()
        after = _tokens(engines.generate(PROMPTS, params))
        want = _tokens(Engine(copy.deepcopy(shared_model), max_batch_size=16).generate(PROMPTS, params))
        assert after == want
        assert after != before
    finally:
        with torch.no_grad():
            shared_model.lm_head.weight.copy_(original)
        engines.weights_changed()


def test_a_worker_error_is_raised_and_the_pool_stays_usable(engines):
    bad = [[1, 2, 3], [10 ** 6]]  # the second request goes to the worker: a token id beyond the vocabulary
    with pytest.raises(EngineWorkerError, match="engine worker 1 failed while generating"):
        engines.generate(bad, SamplingParams(temperature=0.0, max_new_tokens=4))
    ok = engines.generate([[1, 2, 3], [4, 5]], SamplingParams(temperature=0.0, max_new_tokens=4))
    assert [len(r.samples[0].token_ids) for r in ok] == [4, 4]


def test_bad_arguments_and_close():
    model = make_model(seed=4)
    with pytest.raises(EngineWorkerError, match="processes must be a positive integer"):
        ProcessEngines(model, processes=0)
    pool = ProcessEngines(model, processes=2, max_batch_size=4)
    workers = [process for process, _ in pool._workers]
    pool.close()
    pool.close()  # idempotent
    assert all(not p.is_alive() for p in workers)
    # with no workers left it still generates, in this process
    assert len(pool.generate([[1, 2]], SamplingParams(temperature=0.0, max_new_tokens=3))[0].samples[0].token_ids) == 3


def test_one_process_is_a_plain_engine():
    model = make_model(seed=5)
    pool = ProcessEngines(model, processes=1, max_batch_size=4)
    want = Engine(copy.deepcopy(model), max_batch_size=4).generate([[7, 8, 9]], SamplingParams(temperature=0.0,
                                                                                               max_new_tokens=5))
    assert _tokens(pool.generate([[7, 8, 9]], SamplingParams(temperature=0.0, max_new_tokens=5))) == _tokens(want)
    pool.close()
