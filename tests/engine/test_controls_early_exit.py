"""Answer-stabilisation early exit: the text probe and the model probe, through the real Engine."""

from __future__ import annotations

import pytest

from qwq.engine.controls.early_exit import PROBE_SUFFIX, model_probe, stated_answer
from qwq.tokenizer import split_reasoning

from controls_fixtures import (chat_prompt, greedy, ids_of, non_repeating_reasoning, qwq_like_tokenizer,
                               scripted_engine, text_script)


@pytest.fixture(scope="module")
def tok():
    return qwq_like_tokenizer()


@pytest.mark.parametrize("thinking,answer", [
    ("12 * 7 = 84.\n\nSo the answer is 84.\n\nWait, let me double-check: 12 * 7 is 84.", "84"),
    ("First guess: \\boxed{12}.\n\nActually the answer is 13.", "13"),
    ("The answer is 13.\n\nNo: \\boxed{14}", "14"),
    ("So the answer is 5.\nHmm, no. The answer is 6.", "6"),
    ("no answer yet, still computing 12 * 7", None),
])
def test_stated_answer(thinking, answer):
    assert stated_answer(thinking) == answer


def _thinking(tok, pieces):
    ids = []
    for piece in pieces:
        ids += tok.encode(piece) if isinstance(piece, str) else piece
    return ids


def test_text_probe_exits_once_the_stated_answer_is_stable(tok):
    filler = non_repeating_reasoning(tok, 1200, seed=11)
    thinking = _thinking(tok, [filler[:100], "\n\nSo the answer is 84.\n\n", filler[100:]])
    prompt = chat_prompt(tok)
    engine = scripted_engine(text_script(tok, prompt, thinking), tok)
    full = engine.generate([prompt], greedy(1400))[0].samples[0]
    sample = engine.generate([prompt], greedy(1400, early_exit={"every": 32, "patience": 3, "min_tokens": 32}))
    sample = sample[0].samples[0]
    report = sample.controls["early_exit"]
    assert report["exited"]
    stated_at = len(_thinking(tok, [filler[:100], "\n\nSo the answer is 84.\n\n"]))
    # the first probe seeing "84" comes within `every` tokens of it; two more agreeing probes then exit
    assert stated_at <= report["exited_at_thinking_tokens"] <= stated_at + 3 * 32
    assert [p["answer"] for p in report["last_probes"][-3:]] == ["84"] * 3
    assert split_reasoning(sample.text).answer == "The answer is 84."
    assert len(sample.token_ids) < len(full.token_ids) - 900  # it saved most of the thinking


def test_text_probe_waits_while_the_answer_changes(tok):
    filler = non_repeating_reasoning(tok, 1000, seed=12)
    pieces = []
    for k in range(8):  # a new answer every ~110 tokens: never stable for 3 probes 60 tokens apart
        pieces += [filler[k * 100:(k + 1) * 100], f"\n\nSo the answer is {80 + k}.\n\n"]
    thinking = _thinking(tok, pieces)
    prompt = chat_prompt(tok)
    engine = scripted_engine(text_script(tok, prompt, thinking), tok)
    sample = engine.generate([prompt], greedy(1400, early_exit={"every": 60, "patience": 3, "min_tokens": 0}))
    report = sample[0].samples[0].controls["early_exit"]
    assert not report["exited"] and report["probes"] >= 14


class ProbeAware:
    """A thinking script that also answers probes: a context ending in the probe suffix gets `probe_answer}`."""

    def __init__(self, tok, inner, answers_by_length):
        self.inner, self.tok = inner, tok
        self.suffix = tok.encode(PROBE_SUFFIX)
        self.answers = answers_by_length  # [(generated tokens before the probe >= n, answer)]
        self.probes = 0
        self.eos = ids_of(tok, "<|im_end|>")[0]

    def __call__(self, context):
        n = len(self.suffix)
        for k in range(0, 16):  # are we k tokens into a probe's answer?
            end = len(context) - k
            if end >= n and context[end - n:end] == self.suffix:
                if k == 0:
                    self.probes += 1
                before = end - n - self.inner.prompt_len
                answer = [a for limit, a in self.answers if before >= limit][-1]
                ids = self.tok.encode(answer + "}")
                return ids[k] if k < len(ids) else self.eos
        return self.inner(context)


def test_model_probe_asks_the_model_on_a_side_engine(tok):
    prompt = chat_prompt(tok)
    filler = non_repeating_reasoning(tok, 1500, seed=13)
    inner = text_script(tok, prompt, filler)
    # The model's best answer: 7 at first, then 84 once it has thought 300 tokens.
    script = ProbeAware(tok, inner, [(0, "7"), (300, "84")])
    engine = scripted_engine(script, tok)
    probe = model_probe(engine)
    sample = engine.generate([prompt], greedy(1600, early_exit={"every": 50, "patience": 3, "min_tokens": 50,
                                                                "probe": probe}))[0].samples[0]
    report = sample.controls["early_exit"]
    assert report["exited"]
    # probes at 50, 100, 150 all say 7: exit at 150 with the first stable answer
    assert report["exited_at_thinking_tokens"] == 150
    assert [p["answer"] for p in report["last_probes"]] == ["7", "7", "7"]
    assert script.probes == 3
    assert split_reasoning(sample.text).finished
    assert probe.engine.cache.prefix_hits > 0  # later probes reused the blocks of earlier ones

    script.probes = 0
    late = engine.generate([prompt], greedy(1600, early_exit={"every": 50, "patience": 3, "min_tokens": 250,
                                                              "probe": probe}))[0].samples[0]
    report = late.controls["early_exit"]
    assert [p["answer"] for p in report["last_probes"]][:2] == ["7", "84"]
    assert report["exited_at_thinking_tokens"] == 400  # 300, 350, 400 agree on 84
