"""Reasoning/answer splitting: whole texts and streams cut at every position."""

from __future__ import annotations

import random

import pytest

from qwq.tokenizer import ReasoningDelta, ReasoningStreamParser, split_reasoning
from qwq.tokenizer.reasoning import held_suffix_length

# (text, starts_in_reasoning, reasoning, answer, finished)
CASES = {
    "qwq output without opening tag": ("Let me think.\n2+2=4.\n</think>\n\nThe answer is 4.", True,
                                       "Let me think.\n2+2=4.\n", "The answer is 4.", True),
    "no closing tag (max tokens)": ("thinking and thinking", True, "thinking and thinking", "", False),
    "explicit opening tag in reasoning mode": ("<think>\nfoo\n</think>\n\nbar", True, "foo\n", "bar", True),
    "explicit opening tag in answer mode": ("<think>\nfoo\n</think>\n\nbar", False, "foo\n", "bar", True),
    "answer mode without tags": ("just an answer", False, "", "just an answer", True),
    "answer mode, opened and never closed": ("<think>\nhmm", False, "hmm", "", False),
    "empty reasoning": ("</think>\n\nanswer", True, "", "answer", True),
    "empty reasoning with both tags": ("<think></think>answer", False, "", "answer", True),
    "duplicate closing tag": ("a</think>b</think>c", True, "a", "bc", True),
    "nested opening tag inside reasoning": ("a<think>b</think>c", True, "ab", "c", True),
    "reasoning reopened after the answer": ("a</think>b<think>c</think>d", True, "ac", "bd", True),
    "reopened and unfinished": ("a</think>b<think>c", True, "ac", "b", False),
    "partial closing tag at the end is text": ("abc</thi", True, "abc</thi", "", False),
    "partial opening tag at the end of the answer": ("a</think>b<thi", True, "a", "b<thi", True),
    "lookalike tags": ("x </thinking> y </think> z", True, "x </thinking> y ", " z", True),
    "angle brackets in math": ("if a<b and b>c</think>\n\na<b", True, "if a<b and b>c", "a<b", True),
    "only newlines are stripped after the tag": ("r</think>\n\n\n  indented", True, "r", "  indented", True),
    "tags only": ("<think></think>", True, "", "", True),
    "nothing generated yet": ("", True, "", "", False),
    "nothing generated, answer mode": ("", False, "", "", True),
    "leading newlines before reasoning": ("\n\nfoo</think>bar", True, "foo", "bar", True),
    "whitespace before an explicit opening tag": ("\n<think>\nfoo</think>bar", True, "foo", "bar", True),
    "unicode": ("思考中…🤔</think>\n\n答案是 4 😀", True, "思考中…🤔", "答案是 4 😀", True),
    "tool call stays in the answer": ('r</think>\n\n<tool_call>\n{"name": "f"}\n</tool_call>', True, "r",
                                      '<tool_call>\n{"name": "f"}\n</tool_call>', True),
    "blank reasoning between tags": ("<think>\n\n</think>\n\nx", True, "", "x", True),
    "newlines inside the answer are kept": ("r</think>\n\nline1\n\nline2\n", True, "r", "line1\n\nline2\n", True),
}


def _stream(chunks, starts_in_reasoning):
    parser = ReasoningStreamParser(starts_in_reasoning=starts_in_reasoning)
    deltas = []
    for chunk in chunks:
        deltas += parser.feed(chunk)
    deltas += parser.finish()
    reasoning = "".join(d.text for d in deltas if d.kind == "reasoning")
    answer = "".join(d.text for d in deltas if d.kind == "content")
    assert all(d.text for d in deltas)  # never an empty delta
    assert reasoning == parser.reasoning and answer == parser.content
    return reasoning, answer, parser.finished


@pytest.mark.parametrize("name", list(CASES))
def test_whole_text(name):
    text, starts, reasoning, answer, finished = CASES[name]
    result = split_reasoning(text, starts_in_reasoning=starts)
    assert (result.reasoning, result.answer, result.finished) == (reasoning, answer, finished)


@pytest.mark.parametrize("name", list(CASES))
def test_stream_split_at_every_position(name):
    text, starts, reasoning, answer, finished = CASES[name]
    for cut in range(len(text) + 1):
        assert _stream([text[:cut], text[cut:]], starts) == (reasoning, answer, finished), cut
    assert _stream(list(text), starts) == (reasoning, answer, finished)  # one character at a time


@pytest.mark.parametrize("name", list(CASES))
def test_stream_random_chunks(name):
    text, starts, reasoning, answer, finished = CASES[name]
    rng = random.Random(name)
    for _ in range(30):
        cuts = sorted(rng.sample(range(len(text) + 1), k=min(len(text) + 1, rng.randint(1, 6))))
        chunks = [text[a:b] for a, b in zip([0] + cuts, cuts + [len(text)])]
        assert _stream(chunks, starts) == (reasoning, answer, finished)


def test_partial_tag_is_held_until_decidable():
    parser = ReasoningStreamParser()
    assert parser.feed("abc</thi") == [ReasoningDelta("reasoning", "abc")]
    assert parser.in_reasoning
    assert parser.feed("nk>\n\nThe") == [ReasoningDelta("content", "The")]
    assert not parser.in_reasoning and parser.closed_count == 1
    assert parser.feed(" end<") == [ReasoningDelta("content", " end")]
    assert parser.feed("b") == [ReasoningDelta("content", "<b")]
    assert parser.finish() == [] and parser.finished


def test_one_delta_can_hold_both_kinds():
    parser = ReasoningStreamParser()
    assert parser.feed("x</think>y") == [ReasoningDelta("reasoning", "x"), ReasoningDelta("content", "y")]


def test_unfinished_reasoning_releases_held_text_at_finish():
    parser = ReasoningStreamParser()
    assert parser.feed("deep thought </think") == [ReasoningDelta("reasoning", "deep thought ")]
    assert parser.finish() == [ReasoningDelta("reasoning", "</think")]
    assert not parser.finished and parser.reasoning == "deep thought </think"
    assert parser.finish() == []
    with pytest.raises(RuntimeError):
        parser.feed("more")


def test_held_suffix_length():
    tags = ("<think>", "</think>")
    assert held_suffix_length("abc", tags) == 0
    assert held_suffix_length("abc<", tags) == 1
    assert held_suffix_length("abc</thi", tags) == 5
    assert held_suffix_length("abc<think", tags) == 6
    assert held_suffix_length("abc<think>", tags) == 0  # a whole tag is not held, it is handled


def test_prompt_starts_in_reasoning():
    from qwq.tokenizer import QWQ_TEMPLATE, ChatTemplate, prompt_starts_in_reasoning

    template = ChatTemplate(QWQ_TEMPLATE)
    quoting = [{"role": "user", "content": "What does <think> do?"}]
    assert prompt_starts_in_reasoning(template.render(quoting, add_generation_prompt=True))
    assert not prompt_starts_in_reasoning(template.render(quoting, add_generation_prompt=False))
    chatml = "<|im_start|>user\nWhat does <think> do?<|im_end|>\n<|im_start|>assistant\n"
    assert not prompt_starts_in_reasoning(chatml)
    assert prompt_starts_in_reasoning(chatml + "<think>\npartial thoughts")
    assert not prompt_starts_in_reasoning(chatml + "<think>\nthoughts</think>\n\nanswer so far")
