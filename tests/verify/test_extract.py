"""Answer extraction: the answer region, boxed answers, phrases, JSON fields, choice letters, GSM8K golds."""

import pytest

from qwq.verify.extract import (answer_region, extract_choice, extract_math_answer, find_boxed, gold_answer,
                                gsm8k_answer, last_boxed)


def test_find_boxed_keeps_nested_braces_and_reads_fbox_and_braceless_forms():
    text = r"so \boxed{\frac{1}{\sqrt{2}}} and \fbox{x^{2}} then \boxed 7. Also \boxed{\{1,2\}}"
    assert find_boxed(text) == [r"\frac{1}{\sqrt{2}}", "x^{2}", "7", r"\{1,2\}"]


def test_unclosed_or_empty_box_is_an_empty_candidate():
    assert find_boxed(r"\boxed{}") == [""]
    assert find_boxed(r"\boxed{\frac{1}{2}") == [""]
    assert last_boxed(r"\boxed{1} then \boxed{2}") == "2"
    assert last_boxed(r"\boxed{}") is None and last_boxed("none") is None


def test_last_box_is_the_answer_and_all_distinct_boxes_are_kept():
    ex = extract_math_answer(r"first \boxed{3}, then \boxed{ 3 } again, finally \boxed{4}")
    assert ex.answer == "4" and ex.source == "boxed"
    assert ex.distinct == ("3", "4")


@pytest.mark.parametrize("text, answer", [
    ("The answer is 42.", "42"),
    ("So the final answer is $\\frac{3}{4}$.", "\\frac{3}{4}"),
    ("Final Answer: 3.5", "3.5"),
    ("answer: **17**", "17"),
    ("The answer is \\(2\\sqrt{3}\\).", "2\\sqrt{3}"),
])
def test_answer_phrases(text, answer):
    ex = extract_math_answer(text)
    assert ex.answer == answer and ex.source == "answer is"


def test_boxed_wins_over_phrases_and_a_long_text_without_either_has_no_answer():
    assert extract_math_answer("The answer is 5. Actually \\boxed{6}").answer == "6"
    ex = extract_math_answer("I computed many things like 12, 13 and 14 along the way\nbut never concluded.")
    assert ex.answer is None and "no boxed" in ex.reason


def test_short_whole_response_is_the_answer():
    assert extract_math_answer("  $18$ \n").answer == "18"


def test_gsm8k_gold_and_gold_answer_forms():
    assert gsm8k_answer("She pays 2*9=<<2*9=18>>18\n#### 1,018") == "1018"
    assert gsm8k_answer("no marker") is None
    assert gold_answer("Thus \\boxed{\\frac{1}{2}}.The answer is: \\frac12") == "\\frac{1}{2}"
    assert gold_answer("work\n#### 72") == "72"
    assert gold_answer(" 204 ") == "204"


def test_answer_region_is_after_think_and_unfinished_thinking_has_none():
    done = answer_region("let me think\n</think>\n\nThe answer is \\boxed{5}")
    assert done.finished and done.text.strip() == "The answer is \\boxed{5}" and "let me think" in done.reasoning
    unfinished = answer_region("thinking... \\boxed{5} and still thinking")
    assert not unfinished.finished and unfinished.text == ""
    explicit = answer_region("<think>hmm</think>ok", starts_in_reasoning=False)
    assert explicit.finished and explicit.text == "ok"
    plain = answer_region("no thinking here \\boxed{1}", starts_in_reasoning=False)
    assert plain.finished and plain.text.startswith("no thinking")


@pytest.mark.parametrize("text, letter", [
    ('{"answer": "C"}', "C"),
    ('Reasoning...\n```json\n{"answer": "b"}\n```', "B"),
    ("Therefore \\boxed{D}", "D"),
    ("Therefore \\boxed{\\text{(A)}}", "A"),
    ("The correct answer is (B).", "B"),
    ("Answer: C", "C"),
    ("lots of text\n\n(D)", "D"),
])
def test_extract_choice(text, letter):
    assert extract_choice(text).answer == letter


@pytest.mark.parametrize("text", [
    '{"answer": "A, B, C or D"}',
    '{"answer": "E"}',
    "\\boxed{A} or maybe \\boxed{B}",
    "I am not sure.",
])
def test_extract_choice_refuses_ambiguous_or_invalid(text):
    assert extract_choice(text).answer is None
