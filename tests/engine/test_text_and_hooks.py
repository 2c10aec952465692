"""Stop strings across token boundaries, streaming text, and the per-sample controller hook."""

from __future__ import annotations

import asyncio

import pytest
import torch

from qwq.engine import AsyncEngine, Engine, SamplingParams
from qwq.engine.hooks import Action, BaseController
from qwq.engine.textstream import SampleText, held_prefix_length
from qwq.utils.errors import UsageError

from engine_fixtures import make_model, reference_greedy, tiny_config


def test_held_prefix_length():
    assert held_prefix_length("abc EN", ["END"]) == 2
    assert held_prefix_length("abc E", ["END", "EX"]) == 1
    assert held_prefix_length("abc", ["END"]) == 0
    assert held_prefix_length("xEND", ["END"]) == 0  # a whole match is not a prefix; matching handles it


def feed(tokenizer, text: str, **kw) -> tuple[list[str], str, str | None]:
    tracker = SampleText(tokenizer, **kw)
    deltas, matched = [], None
    for token in tokenizer.encode(text):
        delta, matched = tracker.push(token)
        deltas.append(delta)
        if matched:
            break
    if not matched:
        deltas.append(tracker.finish())
    return deltas, tracker.text, matched


def test_stop_string_spanning_tokens_cuts_the_text(tokenizer):
    text = "Stop here END and continue."
    tokens = tokenizer.encode(text)
    pieces = [tokenizer.decode([t]) for t in tokens]
    assert "END" not in pieces  # the stop string is spread over several tokens (or glued to others)
    deltas, final, matched = feed(tokenizer, text, stop=("END",))
    assert matched == "END"
    assert final == "Stop here "
    assert "".join(deltas) == final  # nothing of the stop string ever reached the stream
    kept = feed(tokenizer, text, stop=("END",), include_stop=True)
    assert kept[1] == "Stop here END"


def test_stream_holds_back_a_possible_stop_prefix_and_releases_it(tokenizer):
    deltas, final, matched = feed(tokenizer, "The quick brown fox", stop=("brown cow",))
    assert matched is None and final == "The quick brown fox"
    assert "".join(deltas) == final
    assert not any(d.endswith("brown") for d in deltas[:-1])  # "brown" waited: it could have begun "brown cow"


def test_utf8_characters_split_across_tokens_stream_whole(tokenizer):
    deltas, final, _ = feed(tokenizer, "café 你好 ✓")
    assert final == "café 你好 ✓"
    assert all("\ufffd" not in d for d in deltas)


def test_deferred_text_decodes_to_the_streamed_text(tokenizer):
    from qwq.engine.textstream import SampleText

    ids = tokenizer.encode("café 你好 ✓ done") + [tokenizer.token_to_id("<|im_start|>")]
    streamed, deferred = SampleText(tokenizer), SampleText(tokenizer, stream=False)
    deltas = [streamed.push(t)[0] for t in ids]
    assert all(deferred.push(t) == ("", None) for t in ids)
    assert deferred.text == streamed.text == "café 你好 ✓ done"
    assert deferred.finish() == "".join(deltas) + streamed.finish()
    with_stop = SampleText(tokenizer, stop=("你",), stream=False)  # stop strings need the text per token
    assert any(with_stop.push(t)[1] == "你" for t in ids)


def test_generate_and_stream_give_the_same_text(tiny_model, tokenizer):
    engine = Engine(tiny_model, tokenizer, max_batch_size=4, kv_cache_tokens=512)
    params = SamplingParams(temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=24, n=2, seed=3, ignore_eos=True)
    prompt = tokenizer.encode("Unicode: café")
    generated = engine.generate([prompt], params)[0]
    events = list(engine.stream(prompt, params))
    for sample in generated.samples:
        assert sample.text == "".join(e.text_delta for e in events if e.sample_index == sample.index)
        assert sample.text == engine.last_result.samples[sample.index].text


def test_stop_strings_in_the_engine(tokenizer):
    config = tiny_config(vocab_size=tokenizer.vocab_size)
    model = make_model(config, seed=11)
    engine = Engine(model, tokenizer, config, max_batch_size=2, kv_cache_tokens=512)
    free = engine.generate([tokenizer.encode("Numbers:")],
                           SamplingParams(temperature=0.0, max_new_tokens=30, ignore_eos=True))[0].samples[0]
    assert len(free.text) > 6
    stop = free.text[3:6]  # a stop string somewhere inside the free-running text
    first = free.text.index(stop)
    cut = engine.generate([tokenizer.encode("Numbers:")],
                          SamplingParams(temperature=0.0, max_new_tokens=30, stop=[stop], ignore_eos=True))[0]
    sample = cut.samples[0]
    assert (sample.finish_reason, sample.stop_reason) == ("stop", stop)
    assert sample.text == free.text[:first]
    assert sample.token_ids == free.token_ids[: len(sample.token_ids)]
    streamed = "".join(e.text_delta for e in engine.stream(
        tokenizer.encode("Numbers:"), SamplingParams(temperature=0.0, max_new_tokens=30, stop=[stop], ignore_eos=True)))
    assert streamed == sample.text


class ForceAfter(BaseController):
    """After `after` generated tokens, force `tokens`; count how often it acted."""

    name = "force_after"

    def __init__(self, after: int, tokens: list[int]) -> None:
        self.after, self.tokens, self.fired = after, tokens, 0

    def before_sample(self, state, logits):
        if state.num_generated == self.after and not self.fired:
            self.fired += 1
            return Action(force=self.tokens)
        return None

    def details(self):
        return {"fired": self.fired}


def test_controller_forces_tokens_and_reports_details(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    prompt = [1, 2, 3]
    forced = [77, 78, 79]
    result = engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=9, ignore_eos=True, logprobs=True),
                             controllers=[lambda setting, state: ForceAfter(2, forced)])[0].samples[0]
    free = reference_greedy(tiny_model, prompt, 2)
    assert result.token_ids[:5] == free + forced
    # after the insertion the model continues from the forced text (cache and positions stayed consistent)
    assert result.token_ids[5:] == reference_greedy(tiny_model, prompt + free + forced, 4)
    assert result.forced_mask == [False, False, True, True, True, False, False, False, False]
    assert result.controls == {"force_after": {"fired": 1}}
    with torch.no_grad():
        full = torch.log_softmax(tiny_model(torch.tensor([prompt + result.token_ids]))[0], -1)
    assert result.logprobs[3] == pytest.approx(full[len(prompt) + 2, 78].item(), abs=1e-4)


class ReplaceAndStop(BaseController):
    name = "replace_and_stop"

    def __init__(self, target: int, replacement: list[int], stop_after: int) -> None:
        self.target, self.replacement, self.stop_after = target, replacement, stop_after

    def on_token(self, state, token_id, forced):
        if token_id == self.target and not forced:
            return Action(replace=self.replacement)
        if state.num_generated + 1 >= self.stop_after:
            return Action(stop="enough")
        return None


def test_controller_replaces_a_sampled_token_and_stops_with_a_reason(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    prompt = [4, 5, 6]
    free = reference_greedy(tiny_model, prompt, 3)
    controller = lambda setting, state: ReplaceAndStop(free[1], [11, 12], stop_after=6)  # noqa: E731
    sample = engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=50, ignore_eos=True),
                             controllers=[controller])[0].samples[0]
    assert sample.token_ids[:3] == [free[0], 11, 12]
    assert len(sample.token_ids) == 6
    assert (sample.finish_reason, sample.stop_reason) == ("stop", "enough")


class MaskToken(BaseController):
    name = "mask"

    def __init__(self, token: int, vocab: int) -> None:
        self.bias = torch.zeros(vocab)
        self.bias[token] = float("-inf")

    def before_sample(self, state, logits):
        return Action(bias=self.bias)


def test_controller_bias_masks_a_token(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    prompt = [4, 5, 6]
    free = reference_greedy(tiny_model, prompt, 1)
    vocab = tiny_model.config.vocab_size
    sample = engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=8, ignore_eos=True),
                             controllers=[lambda s, st: MaskToken(free[0], vocab)])[0].samples[0]
    assert free[0] not in sample.token_ids


def test_thinking_state_tracks_think_tokens(tokenizer):
    config = tiny_config(vocab_size=tokenizer.vocab_size)
    model = make_model(config, seed=3)
    engine = Engine(model, tokenizer, config, max_batch_size=2, kv_cache_tokens=512)
    think_open, think_close = engine.think_token_ids
    assert think_open is not None and think_close is not None
    seen = []

    class Recorder(BaseController):
        name = "recorder"

        def on_token(self, state, token_id, forced):
            seen.append((state.in_thinking, state.thinking_tokens, state.answer_tokens))
            return None

    prompt = tokenizer.encode("<|im_start|>assistant\n<think>\n")
    script = [tokenizer.encode("abc")[0], think_close, tokenizer.encode("x")[0]]
    engine.generate([prompt], SamplingParams(temperature=0.0, max_new_tokens=3, ignore_eos=True),
                    controllers=[lambda s, st: ForceAfter(0, script), lambda s, st: Recorder()])
    # state as seen before each token is appended: inside thinking for the first two, answering after </think>
    assert seen == [(True, 0, 0), (True, 1, 0), (False, 2, 0)]


def test_unknown_control_name_is_a_usage_error(tiny_model):
    engine = Engine(tiny_model, max_batch_size=2, kv_cache_tokens=256)
    with pytest.raises(UsageError, match="unknown control"):
        engine.generate([[1, 2]], SamplingParams(controls={"no_such_control": 3}))
    assert not engine.has_work()


def test_async_engine_streams_concurrent_requests_and_aborts(tiny_model):
    engine = Engine(tiny_model, max_batch_size=4, block_size=4, kv_cache_tokens=512)
    aengine = AsyncEngine(engine)
    params = SamplingParams(temperature=0.0, max_new_tokens=6, ignore_eos=True)

    async def collect(prompt, rid):
        return [e.token_id async for e in aengine.generate(prompt, params, rid)]

    async def cancel_early():
        got = 0
        async for _ in aengine.generate([1, 2, 3], params.replace(max_new_tokens=1000), "long"):
            got += 1
            if got == 3:
                break  # leaving the loop aborts the request
        return got

    async def main():
        results = await asyncio.gather(collect([1, 2, 3], "a"), collect([9, 8], "b"), cancel_early())
        done = await aengine.complete([5, 6, 7], params, "c")
        return results, done

    (a, b, cancelled), done = asyncio.run(main())
    assert a == reference_greedy(tiny_model, [1, 2, 3], 6)
    assert b == reference_greedy(tiny_model, [9, 8], 6)
    assert cancelled == 3
    assert done.samples[0].token_ids == reference_greedy(tiny_model, [5, 6, 7], 6)
    assert aengine.result("a").samples[0].token_ids == a

    async def bad():
        async for _ in aengine.generate([], params, "bad"):
            pass

    with pytest.raises(UsageError, match="empty"):
        asyncio.run(bad())
    aengine.shutdown()
    assert not engine.cache.seqs


def test_async_engine_wakes_the_event_loop_once_per_step(tiny_model):
    engine = Engine(tiny_model, max_batch_size=8, block_size=4, kv_cache_tokens=512)
    aengine = AsyncEngine(engine)
    params = SamplingParams(temperature=0.0, max_new_tokens=5, n=2, ignore_eos=True)
    steps, step = [], engine.step
    engine.step = lambda: steps.append(1) or step()

    async def main():
        loop = asyncio.get_running_loop()
        wakeups, call = [], loop.call_soon_threadsafe
        loop.call_soon_threadsafe = lambda *a: wakeups.append(1) or call(*a)

        async def run(prompt, rid):
            return [(e.sample_index, e.token_id) async for e in aengine.generate(prompt, params, rid)]

        outputs = await asyncio.gather(*(run([i + 1, i + 2, i + 3], f"r{i}") for i in range(3)))
        return outputs, len(wakeups)

    outputs, wakeups = asyncio.run(main())
    for i, events in enumerate(outputs):  # 3 requests x 2 samples x 5 tokens, in order per sample
        want = reference_greedy(tiny_model, [i + 1, i + 2, i + 3], 5)
        assert [t for s, t in events if s == 0] == want and [t for s, t in events if s == 1] == want
    assert 0 < wakeups <= len(steps) < 30  # not one per token (30 events)
    aengine.shutdown()
