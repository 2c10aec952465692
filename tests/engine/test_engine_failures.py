"""A failure inside an engine step fails the requests it concerns (finish_reason "error", cache freed) and nothing
else: the other requests keep their exact tokens and the async worker keeps serving."""

from __future__ import annotations

import asyncio

import pytest
import torch

from qwq.engine import AsyncEngine, Engine, SamplingParams
from qwq.engine.hooks import Action, BaseController

from engine_fixtures import make_model, reference_greedy

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=6, ignore_eos=True)
POISON = 299  # a prompt holding this id makes the model raise (see poison_model)


class Boom(RuntimeError):
    pass


class RaiseAt(BaseController):
    """Raises in before_sample once its sample has `at` tokens."""

    name = "raise_at"

    def __init__(self, at: int) -> None:
        self.at = at

    def before_sample(self, state, logits):
        if state.num_generated == self.at:
            raise Boom(f"controller exploded at token {self.at}")
        return None


class MaskAll(BaseController):
    """Masks every token from its sample's `at`-th token on: sampling that row cannot work."""

    name = "mask_all"

    def __init__(self, at: int) -> None:
        self.at = at

    def before_sample(self, state, logits):
        if state.num_generated >= self.at:
            return Action(bias=torch.full_like(logits, float("-inf")))
        return None


def cache_is_empty(engine: Engine) -> bool:
    return not engine.cache.seqs and engine.cache.free_blocks() == engine.cache.num_blocks


@pytest.fixture
def poison_model():
    """A tiny model whose embedding raises on POISON, and on any decode step while `armed` is set."""
    model = make_model()
    state = {"armed": False}

    def check(module, args):
        ids = args[0]
        if (ids == POISON).any():
            raise Boom("poisoned prompt")
        if state["armed"] and ids.shape[1] == 1:
            state["armed"] = False
            raise Boom("decode forward failed")

    model.model.embed_tokens.register_forward_pre_hook(check)
    return model, state


def collect(aengine: AsyncEngine, prompt, params, rid, controllers=()):
    async def run():
        return [e async for e in aengine.generate(prompt, params, rid, controllers)]
    return run()


def test_a_raising_controller_fails_only_its_request_and_the_worker_goes_on(tiny_model):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    aengine = AsyncEngine(engine)

    async def main():
        return await asyncio.gather(collect(aengine, [1, 2, 3], GREEDY, "good"),
                                    collect(aengine, [4, 5, 6], GREEDY.replace(n=2), "bad",
                                            [lambda _, state: RaiseAt(2)]),
                                    collect(aengine, [9, 8], GREEDY, "other"))

    good, bad, other = asyncio.run(main())
    assert [e.token_id for e in good] == reference_greedy(tiny_model, [1, 2, 3], 6)
    assert [e.token_id for e in other] == reference_greedy(tiny_model, [9, 8], 6)
    closing = [e for e in bad if e.finished]
    assert sorted(e.sample_index for e in closing) == [0, 1]
    assert all(e.finish_reason == "error" and "Boom: controller exploded at token 2" in e.error for e in closing)
    assert sum(e.token_id is not None for e in bad) == 4  # two tokens per sample before the failure
    result = aengine.result("bad")
    assert [s.finish_reason for s in result.samples] == ["error", "error"]
    assert "controller exploded" in result.samples[0].stop_reason
    assert aengine.error is None and cache_is_empty(engine)
    later = asyncio.run(collect(aengine, [1, 2, 3], GREEDY, "later"))
    assert [e.token_id for e in later] == reference_greedy(tiny_model, [1, 2, 3], 6)
    aengine.shutdown()


def test_a_failing_prefill_fails_that_request_alone(poison_model):
    model, _ = poison_model
    engine = Engine(model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    aengine = AsyncEngine(engine)

    async def main():
        return await asyncio.gather(collect(aengine, [1, 2, 3], GREEDY, "a"),
                                    collect(aengine, [7, POISON, 7], GREEDY.replace(n=3), "poisoned"),
                                    collect(aengine, [9, 8], GREEDY, "b"))

    a, poisoned, b = asyncio.run(main())
    assert [e.token_id for e in a] == reference_greedy(model, [1, 2, 3], 6)
    assert [e.token_id for e in b] == reference_greedy(model, [9, 8], 6)
    assert [(e.token_id, e.finish_reason) for e in poisoned] == [(None, "error")] * 3
    assert "poisoned prompt" in poisoned[0].error
    assert aengine.error is None and cache_is_empty(engine)
    aengine.shutdown()


def test_a_failing_decode_forward_fails_its_batch_and_later_requests_run(poison_model):
    model, state = poison_model
    engine = Engine(model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    for prompt in ([1, 2, 3], [9, 8]):
        engine.submit(prompt, GREEDY)
    events = engine.step()  # prefill both (first tokens), then one decode step (second tokens)
    assert [e.token_id is not None for e in events] == [True] * 4
    state["armed"] = True
    events = engine.step()
    assert [(e.finish_reason, "decode forward failed" in e.error) for e in events] == [("error", True)] * 2
    assert not engine.has_work() and cache_is_empty(engine)
    again = engine.generate([[1, 2, 3]], GREEDY)[0]
    assert again.samples[0].token_ids == reference_greedy(model, [1, 2, 3], 6)


def test_a_row_that_cannot_be_sampled_leaves_the_others_exact(tiny_model):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    hot = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=8, seed=3, ignore_eos=True)
    alone = engine.generate([[5, 6, 7]], hot)[0].samples[0].token_ids
    engine.submit([5, 6, 7], hot, "target")
    engine.submit([1, 2], hot.replace(seed=4), "masked", [lambda _, state: MaskAll(3)])
    tokens: dict[str, list] = {"target": [], "masked": []}
    reasons = {}
    while engine.has_work():
        for event in engine.step():
            if event.token_id is not None:
                tokens[event.request_id].append(event.token_id)
            if event.finished:
                reasons[event.request_id] = (event.finish_reason, event.error)
    assert tokens["target"] == alone and reasons["target"] == ("length", None)
    assert len(tokens["masked"]) == 3
    assert reasons["masked"][0] == "error" and "masked" in reasons["masked"][1]
    assert cache_is_empty(engine)


def test_the_sync_api_raises_what_failed_and_frees_everything(tiny_model):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    with pytest.raises(Boom, match="token 1"):
        engine.generate([[1, 2, 3], [4, 5]], GREEDY, controllers=[lambda _, state: RaiseAt(1)])
    assert not engine.has_work() and cache_is_empty(engine)
    stream = engine.stream([1, 2, 3], GREEDY, controllers=[lambda _, state: RaiseAt(2)])
    seen = []
    with pytest.raises(Boom):
        for event in stream:
            seen.append(event)
    assert [e.finish_reason for e in seen] == [None, None, "error"]
    assert engine.generate([[1, 2, 3]], GREEDY)[0].samples[0].token_ids == reference_greedy(tiny_model, [1, 2, 3], 6)


def test_a_step_failing_outside_any_request_fails_those_in_flight_only(tiny_model, monkeypatch):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=256)
    aengine = AsyncEngine(engine)
    admit, calls = engine.scheduler._admit, []

    def broken_once(events):
        calls.append(1)
        if len(calls) == 1:
            raise Boom("scheduler bookkeeping bug")
        return admit(events)

    monkeypatch.setattr(engine.scheduler, "_admit", broken_once)
    first = asyncio.run(collect(aengine, [1, 2, 3], GREEDY.replace(n=2), "first"))
    assert [(e.finish_reason, "bookkeeping" in e.error) for e in first] == [("error", True)] * 2
    assert aengine.error is None and cache_is_empty(engine)
    later = asyncio.run(collect(aengine, [1, 2, 3], GREEDY, "later"))
    assert [e.token_id for e in later] == reference_greedy(tiny_model, [1, 2, 3], 6)
    aengine.shutdown()
