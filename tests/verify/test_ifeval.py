"""IFEval checkers: a following and a violating response for every supported instruction id."""

import json

import pytest

from qwq.verify.ifeval import (SUPPORTED_INSTRUCTIONS, InstructionError, check_instruction, evaluate_ifeval,
                               loose_variants)

LOREM = "The river runs past the old mill. Children play on its banks. Nobody remembers when it was built."

CASES = {
    "punctuation:no_comma": ({}, "No commas here at all.", "Well, here is one."),
    "length_constraints:number_words": (
        {"num_words": 5, "relation": "at least"}, "one two three four five", "one two three four"),
    "length_constraints:number_sentences": (
        {"num_sentences": 3, "relation": "less than"}, "Dr. Smith arrived at 3.30 p.m. today. He left.", LOREM),
    "length_constraints:number_paragraphs": (
        {"num_paragraphs": 2}, "First part.\n***\nSecond part.", "First part.\n***\n\n***\nSecond part."),
    "length_constraints:nth_paragraph_first_word": (
        {"num_paragraphs": 2, "nth_paragraph": 2, "first_word": "bonding"},
        "Intro text.\n\n\"Bonding, they said, matters.\"", "Intro text.\n\nBonds matter."),
    "keywords:forbidden_words": (
        {"forbidden_words": ["war", "fight"]}, "Software and warfare are fine words.", "They went to WAR."),
    "keywords:existence": (
        {"keywords": ["river", "mill"]}, LOREM, "A river without the other word."),
    "keywords:frequency": (
        {"keyword": "mill", "frequency": 2, "relation": "at least"}, "A mill. Another Mill!", "One mill. Millions."),
    "keywords:letter_frequency": (
        {"letter": "z", "let_frequency": 2, "let_relation": "less than"}, "A lazy day.", "Zebras zoom."),
    "detectable_format:number_highlighted_sections": (
        {"num_highlights": 2}, "*first* and **second**", "*only one* and ** ** empty"),
    "detectable_format:number_bullet_lists": (
        {"num_bullets": 2}, "Items:\n* apples\n- pears", "Items:\n* apples\n* pears\n* plums"),
    "detectable_format:multiple_sections": (
        {"num_sections": 2, "section_spliter": "SECTION"}, "SECTION 1\nhello\nSECTION 2\nworld",
        "SECTION 1\nhello only"),
    "detectable_format:title": ({}, "<<A Day at Sea>>\nWe sailed.", "A Day at Sea\nWe sailed. << >>"),
    "detectable_format:json_format": ({}, '```json\n{"a": [1, 2]}\n```', "{'a': 1}"),
    "detectable_format:constrained_response": ({}, "My answer is maybe.", "I guess yes."),
    "detectable_content:number_placeholders": (
        {"num_placeholders": 2}, "Dear [name], at [address].", "Dear [name], at home."),
    "detectable_content:postscript": (
        {"postscript_marker": "P.S."}, "Letter body.\n\nP.S. See you soon.", "Letter body. PS see you."),
    "combination:repeat_prompt": (
        {"prompt_to_repeat": "Write a poem about rain."}, "Write a poem about rain. Rain falls softly.",
        "Here is a poem about rain."),
    "combination:two_responses": ({}, "First answer.\n******\nSecond answer.", "Same.\n******\nSame."),
    "startend:end_checker": (
        {"end_phrase": "Is there anything else I can help with?"},
        "Done. Is there anything else I can help with?", "Is there anything else I can help with? Bye."),
    "startend:quotation": ({}, '"All wrapped up."', '"Not wrapped up.'),
    "change_case:english_lowercase": (
        {}, "this whole reply is written in lowercase english letters only.", "This one has a Capital letter."),
    "change_case:english_capital": (
        {}, "THIS WHOLE REPLY IS WRITTEN IN CAPITAL ENGLISH LETTERS.", "THIS ONE IS Mostly CAPITALS."),
    "change_case:capital_word_frequency": (
        {"capital_frequency": 2, "capital_relation": "at least"}, "USE THE CAPS sparingly", "Only ONE here"),
    "language:response_language": (
        {"language": "de"}, "Das ist eine kurze Antwort auf Deutsch, die jeder verstehen kann.",
        "This is a short answer written entirely in English for everyone."),
}


def test_at_least_twenty_instruction_ids_and_every_one_is_tested():
    assert len(SUPPORTED_INSTRUCTIONS) >= 20
    assert set(CASES) == set(SUPPORTED_INSTRUCTIONS)


def test_every_instruction_id_in_the_benchmark_is_supported(shared_data):
    rows = [json.loads(line) for line in (shared_data / "qwq-eval" / "ifeval.jsonl").read_text().splitlines()]
    used = {i for r in rows for i in r["instruction_id_list"]}
    assert used <= set(SUPPORTED_INSTRUCTIONS), used - set(SUPPORTED_INSTRUCTIONS)
    for r in rows:  # every row's arguments are accepted
        evaluate_ifeval("A response.", r["instruction_id_list"], r["kwargs"], prompt=r["prompt"])


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_following_response_passes(instruction_id):
    kwargs, good, _ = CASES[instruction_id]
    assert check_instruction(instruction_id, good, kwargs) is True


@pytest.mark.parametrize("instruction_id", sorted(CASES))
def test_violating_response_fails(instruction_id):
    kwargs, _, bad = CASES[instruction_id]
    assert check_instruction(instruction_id, bad, kwargs) is False


def test_empty_response_follows_nothing():
    assert check_instruction("punctuation:no_comma", "   ") is False


def test_loose_forgives_a_chatty_first_line_and_markdown():
    response = "Sure, here it is:\nthe whole answer in lowercase."
    assert not check_instruction("punctuation:no_comma", response)
    assert check_instruction("punctuation:no_comma", response, loose=True)
    assert check_instruction("startend:end_checker", "Bye now.**", {"end_phrase": "bye now."}, loose=True)
    assert len(loose_variants("a\nb\nc")) == 8


def test_evaluate_reports_strict_and_loose_per_instruction():
    result = evaluate_ifeval("Sure, here:\nno commas here", ["punctuation:no_comma", "detectable_format:title"],
                             [{}, {}])
    assert result.strict == (False, False) and result.loose == (True, False)
    assert not result.prompt_strict and not result.prompt_loose
    assert result.to_dict()["instruction_ids"] == ["punctuation:no_comma", "detectable_format:title"]


def test_bad_ids_and_arguments_are_clear_errors():
    with pytest.raises(InstructionError, match="unknown instruction id 'nope:x'"):
        check_instruction("nope:x", "text")
    with pytest.raises(InstructionError, match="missing argument"):
        check_instruction("length_constraints:number_words", "text", {"relation": "at least"})
    with pytest.raises(InstructionError, match="unexpected argument"):
        check_instruction("punctuation:no_comma", "text", {"num_words": 3})
    with pytest.raises(InstructionError, match="relation must be one of"):
        check_instruction("length_constraints:number_words", "text", {"num_words": 3, "relation": "exactly"})
    with pytest.raises(InstructionError, match="2 instruction ids but 1 kwargs"):
        evaluate_ifeval("text", ["punctuation:no_comma", "detectable_format:title"], [{}])
