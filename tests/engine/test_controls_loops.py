"""Loop breaker: the detector on token sequences, and the controller through the real Engine on scripted models."""

from __future__ import annotations

import random

import pytest

from qwq.engine.controls.loops import LoopDetector, detect_loop
from qwq.engine.controls.settings import LoopBreakerSettings
from qwq.tokenizer import split_reasoning

from controls_fixtures import (chat_prompt, greedy, non_repeating_reasoning, qwq_like_tokenizer, scripted_engine,
                               text_script)

CYCLE = "Wait, let me check 12 * 7 once more. 12 * 7 = 84, and 84 is right. "


@pytest.fixture(scope="module")
def tok():
    return qwq_like_tokenizer()


# ---------------------------------------------------------------- detector


def test_exact_cycle_is_found_within_its_bound():
    rng = random.Random(1)
    for period in (1, 2, 7, 37, 120, 256):
        prefix = [rng.randrange(10_000, 20_000) for _ in range(300)]
        cycle = [rng.randrange(10_000, 20_000) for _ in range(period)]
        loop = detect_loop(prefix + cycle * max(40, 200 // period))
        assert loop is not None and loop.kind == "period" and loop.period == period
        settings = LoopBreakerSettings()
        bound = max(settings.min_span, (settings.min_repeats - 1) * period) + period
        assert loop.at_token - len(prefix) < bound  # fires within W_p + p tokens of the loop's start


def test_a_loop_is_found_at_the_first_token_that_completes_its_evidence():
    # the detector only examines tokens once a loop is possible at all; the first possible moment must still count
    settings = LoopBreakerSettings()
    loop = detect_loop([5] * 200)
    assert loop is not None and loop.period == 1 and loop.at_token == settings.min_span  # W_1 + 1 tokens: 0..48
    detector = LoopDetector()
    found = [detector.push(t) for t in [3, 4] * 60]
    first = next(i for i, f in enumerate(found) if f is not None)
    assert first == found[first].at_token == settings.min_span + 1  # period 2: W_2 + 2 tokens
    assert all(f is None for f in found[:first]) and all(f is found[first] for f in found[first:])


def test_near_exact_cycle_with_a_changing_counter_is_found():
    rng = random.Random(2)
    cycle = [rng.randrange(1000) for _ in range(40)]
    tokens = [rng.randrange(1000, 2000) for _ in range(200)]
    for k in range(30):
        varied = list(cycle)
        varied[7] = 5000 + k  # a counter: "attempt k"
        varied[23] = 6000 + k % 3
        tokens += varied
    loop = detect_loop(tokens)
    assert loop is not None and loop.period == 40
    assert loop.at_token < 200 + 4 * 40
    assert detect_loop(tokens, LoopBreakerSettings(tolerance=0.0, ngram=40)) is None  # exactness would miss it


def test_cycle_with_insertions_is_found_by_the_repeated_ngram():
    rng = random.Random(3)
    sentence = [rng.randrange(1000) for _ in range(30)]
    tokens = [rng.randrange(1000, 2000) for _ in range(100)]
    for _ in range(8):  # the same sentence, with different text of varying length in between: no fixed period
        tokens += sentence + [rng.randrange(2000, 3000) for _ in range(rng.randint(5, 60))]
    loop = detect_loop(tokens)
    assert loop is not None and loop.kind == "ngram"
    assert detect_loop(tokens, LoopBreakerSettings(ngram_repeats=1000)) is None


def test_random_tokens_and_common_structures_never_fire():
    rng = random.Random(4)
    assert detect_loop([rng.randrange(50) for _ in range(5000)]) is None  # small alphabet, lots of chance matches
    counting = [t for i in range(400) for t in (7, 100 + i % 97, 200 + i // 97)]  # "1, 2, 3, ...": changes each time
    assert detect_loop(counting) is None


@pytest.mark.parametrize("seed", range(4))
def test_two_thousand_token_reasoning_never_fires(tok, seed):
    assert detect_loop(non_repeating_reasoning(tok, 2000, seed)) is None


def test_detector_rejects_bad_settings():
    with pytest.raises(ValueError):
        LoopDetector(max_period=0)


# ---------------------------------------------------------------- through the engine


def _run(tok, thinking, max_new_tokens=3000, answer="\n\nThe answer is 84.", **controls):
    prompt = chat_prompt(tok)
    engine = scripted_engine(text_script(tok, prompt, thinking, answer), tok)
    return engine.generate([prompt], greedy(max_new_tokens, **controls))[0].samples[0]


def test_breaker_closes_the_thinking_of_a_looping_script_and_the_model_answers(tok):
    intro = non_repeating_reasoning(tok, 150, seed=7)
    cycle = tok.encode(CYCLE)
    thinking = intro + cycle * 200
    free = _run(tok, thinking, max_new_tokens=1200)
    assert free.finish_reason == "length" and not split_reasoning(free.text).finished

    sample = _run(tok, thinking, loop_breaker=True)
    report = sample.controls["loop_breaker"]
    assert report["fired"] == 1 and report["outcome"] == "answered"
    loop = report["loops"][0]
    assert loop["phase"] == "thinking" and loop["period"] == len(cycle)
    assert loop["at_token"] < len(intro) + 4 * len(cycle)  # bounded: about three copies of the cycle
    split = split_reasoning(sample.text)
    assert split.finished and split.answer == "The answer is 84."
    assert "going around in circles" in split.reasoning
    assert (sample.finish_reason, sample.stop_reason) == ("stop", tok.token_to_id("<|im_end|>"))
    accounting = sample.controls["accounting"]
    assert accounting["reasoning_tokens"] + accounting["answer_tokens"] == len(sample.token_ids)
    assert accounting["thinking_closed"] and accounting["first_answer_s"] is not None


def test_breaker_stop_action_ends_the_sample_with_reason_loop(tok):
    thinking = non_repeating_reasoning(tok, 100, seed=8) + tok.encode(CYCLE) * 100
    sample = _run(tok, thinking, loop_breaker="stop")
    assert (sample.finish_reason, sample.stop_reason) == ("stop", "loop")
    assert sample.controls["loop_breaker"]["outcome"] == "stopped"
    assert len(sample.token_ids) < 100 + 4 * len(tok.encode(CYCLE))


def test_near_exact_loop_in_text_is_broken(tok):
    intro = non_repeating_reasoning(tok, 120, seed=9)
    loop_text = "".join(f"Attempt {k}: maybe the product 12 * 7 is 84, let me verify it once more. "
                        for k in range(10, 90))
    sample = _run(tok, intro + tok.encode(loop_text), loop_breaker=True)
    assert sample.controls["loop_breaker"]["fired"] == 1
    assert split_reasoning(sample.text).answer == "The answer is 84."


@pytest.mark.parametrize("seed", [0, 1])
def test_breaker_never_fires_on_a_two_thousand_token_non_repeating_script(tok, seed):
    thinking = non_repeating_reasoning(tok, 2000, seed)
    off = _run(tok, thinking, max_new_tokens=2100)
    on = _run(tok, thinking, max_new_tokens=2100, loop_breaker=True)
    assert on.controls["loop_breaker"]["fired"] == 0
    assert on.token_ids == off.token_ids  # the breaker changed nothing
    assert on.controls["accounting"]["reasoning_tokens"] == 2001  # the thinking and its closing tag


def test_loop_in_the_answer_stops_the_sample(tok):
    answer = "\n\nThe answer is 84." + " Yes, it is 84 for sure." * 80
    sample = _run(tok, tok.encode("Short thought. 12 * 7 = 84."), answer=answer, loop_breaker=True)
    report = sample.controls["loop_breaker"]
    assert report["loops"][0]["phase"] == "answer"
    assert (sample.finish_reason, sample.stop_reason) == ("stop", "loop")


def test_answer_budget_after_a_break(tok):
    thinking = tok.encode(CYCLE) * 100
    answer = "\n\n" + " ".join(f"word{i}" for i in range(200))
    sample = _run(tok, thinking, answer=answer, loop_breaker={"answer_tokens": 10})
    assert sample.stop_reason == "answer_budget"
    assert sample.controls["accounting"]["answer_tokens"] == 10


def test_starts_in_thinking_override_for_a_prompt_without_think_tags(tok):
    prompt = tok.encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n")  # no <think>: an answer
    cycle = tok.encode(CYCLE)
    engine = scripted_engine(text_script(tok, prompt, cycle * 50), tok)
    as_answer = engine.generate([prompt], greedy(600, loop_breaker=True))[0].samples[0]
    assert as_answer.controls["loop_breaker"]["loops"][0]["phase"] == "answer"
    assert as_answer.stop_reason == "loop"
    as_thinking = engine.generate([prompt], greedy(600, loop_breaker=True, starts_in_thinking=True))[0].samples[0]
    assert as_thinking.controls["loop_breaker"]["outcome"] == "answered"
    assert "</think>" in as_thinking.text


@pytest.mark.weights
def test_controls_with_the_real_qwq_tokenizer(real_gguf):
    """QwQ's own vocabulary (Qwen2 BPE + its added tokens): `</think>` is one token, the chat template opens the
    thinking, and a looping thinking is cut and answered."""
    from qwq.tokenizer import ChatTemplate, Tokenizer, qwq_tokenizer

    tok = qwq_tokenizer(Tokenizer.from_gguf(real_gguf))
    template = ChatTemplate.for_tokenizer(tok)
    prompt = tok.encode(template.render([{"role": "user", "content": "What is 12 * 7?"}],
                                        add_generation_prompt=True))
    assert tok.decode(prompt).endswith("<|im_start|>assistant\n<think>\n")
    cycle = tok.encode(CYCLE)
    engine = scripted_engine(text_script(tok, prompt, tok.encode("Let me see. ") + cycle * 40), tok, max_len=4096)
    sample = engine.generate([prompt], greedy(1000, loop_breaker=True, thinking_budget=900))[0].samples[0]
    close = tok.token_to_id("</think>")
    assert close == 151668 and sample.token_ids.count(close) == 1
    assert sample.controls["loop_breaker"]["loops"][0]["period"] == len(cycle)
    assert split_reasoning(sample.text).answer == "The answer is 84."
    assert sample.controls["accounting"]["reasoning_tokens"] == sample.token_ids.index(close) + 1
