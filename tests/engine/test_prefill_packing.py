"""Packed prefill: several prompts in one forward give the logits and tokens each gets alone; the step's prompt
budget spreads admissions over steps; prompts repeating a first block read it from the prefix cache."""

from __future__ import annotations

import pytest
import torch

from qwq.engine import Engine, SamplingParams
from qwq.engine.cache import PagedKVCache, StaticKVCache
from qwq.engine.prefill import plan_packs, split_waves
from qwq.engine.runner import ModelRunner
from qwq.engine.sequence import RequestState

from engine_fixtures import reference_greedy

GREEDY = SamplingParams(temperature=0.0, max_new_tokens=6, ignore_eos=True)
PROMPTS = [[3, 1, 4, 1, 5, 9, 2, 6], [2, 7], [1] * 21, [10, 20, 30, 40, 50], [8, 8, 8, 1, 2, 3, 4, 5, 6, 7, 9]]


def count_packed(engine: Engine) -> list[int]:
    calls, packed = [], engine.runner.prefill_packed

    def counting(seq_ids, prompts, starts):
        calls.append(len(seq_ids))
        return packed(seq_ids, prompts, starts)

    engine.runner.prefill_packed = counting
    return calls


def test_plan_packs_and_waves():
    assert plan_packs([5, 3, 4, 9, 2, 2], 8) == [[0, 1], [3], [2, 4, 5]]
    assert plan_packs([], 8) == []
    requests = [RequestState(f"r{i}", p, GREEDY) for i, p in enumerate([[1, 2, 3, 4, 5], [1, 2, 3, 4, 6], [1, 2],
                                                                         [1, 2, 3, 4, 5, 6], [9, 9, 9, 9, 9]])]
    waves = split_waves(requests, 4, prefix_caching=True)
    assert [[r.request_id for r in wave] for wave in waves] == [["r0", "r2", "r4"], ["r1", "r3"]]
    assert split_waves(requests, 4, prefix_caching=False) == [requests]


@pytest.mark.parametrize("cache_cls", [PagedKVCache, StaticKVCache])
def test_packed_logits_equal_separate_prefills(tiny_model, cache_cls):
    config = tiny_model.config
    make = (lambda: PagedKVCache(config, 64, 4)) if cache_cls is PagedKVCache else (lambda: StaticKVCache(config, 8, 64))
    prompts = [[5, 6, 7, 8, 9, 10, 11], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [42], [7, 7]]
    alone_cache, packed_cache = make(), make()
    alone_runner, packed_runner = ModelRunner(tiny_model, alone_cache), ModelRunner(tiny_model, packed_cache)
    starts = [0, 4, 0, 1]  # two prompts continue a sequence whose cache holds their first tokens
    for sid, (prompt, start) in enumerate(zip(prompts, starts)):
        for cache, runner in ((alone_cache, alone_runner), (packed_cache, packed_runner)):
            cache.add_sequence(sid)
            if start:
                runner.prefill(sid, prompt[:start])
    alone = torch.cat([alone_runner.prefill(sid, p, s) for sid, (p, s) in enumerate(zip(prompts, starts))])
    packed = packed_runner.prefill_packed(list(range(4)), prompts, starts)
    torch.testing.assert_close(packed, alone, rtol=1e-5, atol=1e-5)
    for sid, prompt in enumerate(prompts):
        assert packed_cache.length(sid) == len(prompt)
    # the packed caches hold the same keys: one more decode step gives the same logits
    decode_alone = alone_runner.decode(list(range(4)), [1, 2, 3, 4])
    torch.testing.assert_close(packed_runner.decode(list(range(4)), [1, 2, 3, 4]), decode_alone, rtol=1e-5, atol=1e-5)


def test_engine_packs_prompts_and_keeps_greedy_exact(tiny_model):
    engine = Engine(tiny_model, max_batch_size=16, block_size=4, kv_cache_tokens=1024, prefill_chunk=32)
    calls = count_packed(engine)
    results = engine.generate(PROMPTS, GREEDY.replace(n=2))
    assert calls == [3, 2]  # prompts of 8 + 2 + 21 and 5 + 11 tokens in forwards of at most 32
    for prompt, result in zip(PROMPTS, results):
        want = reference_greedy(tiny_model, prompt, 6)
        assert [s.token_ids for s in result.samples] == [want, want]
        assert result.timings.prefill_s > 0 and result.timings.time_to_first_token_s is not None
    assert not engine.cache.seqs


def test_the_prompt_budget_spreads_admission_over_steps(tiny_model):
    engine = Engine(tiny_model, max_batch_size=8, block_size=4, kv_cache_tokens=1024, prefill_budget=12)
    for prompt in PROMPTS:
        engine.submit(prompt, GREEDY)
    admitted = []
    while engine.has_work():
        waiting = len(engine.scheduler.waiting)
        engine.step()
        admitted.append(waiting - len(engine.scheduler.waiting))
    # 8 + 2 tokens fit 12; then 21 (over budget, but the first of its step); then 5; then 11
    assert admitted[:4] == [2, 1, 1, 1]
    alone = Engine(tiny_model, max_batch_size=8, block_size=4, kv_cache_tokens=1024)
    budgeted = Engine(tiny_model, max_batch_size=8, block_size=4, kv_cache_tokens=1024, prefill_budget=12)
    assert [r.samples[0].token_ids for r in budgeted.generate(PROMPTS, GREEDY)] == \
        [r.samples[0].token_ids for r in alone.generate(PROMPTS, GREEDY)]


def test_repeated_prompt_prefixes_are_computed_once_per_step(tiny_model):
    engine = Engine(tiny_model, max_batch_size=8, block_size=4, kv_cache_tokens=1024)
    system = list(range(100, 113))  # three full blocks shared by every prompt
    prompts = [system + [i, i + 1] for i in range(4)]
    results = engine.generate(prompts, GREEDY)
    assert [r.timings.cached_prompt_tokens for r in results] == [0, 12, 12, 12]
    for prompt, result in zip(prompts, results):
        assert result.samples[0].token_ids == reference_greedy(tiny_model, prompt, 6)
