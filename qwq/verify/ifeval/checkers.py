"""One checker per IFEval instruction id: `check(response, **kwargs) -> bool`.

Semantics follow the IFEval paper's reference checkers, with these deliberate differences (each stricter or more
correct, never more lenient on purpose):
- keywords (existence, frequency, forbidden) match whole words, case-insensitively, with the keyword taken
  literally; the reference searches the keyword as a raw regular expression inside words ("war" in "software");
- sentences are counted by our rule-based splitter (text.py), not NLTK punkt;
- capital-word frequency counts `\\w+` runs that are all capitals (the reference uses NLTK's word tokenizer).
"""

from __future__ import annotations

import json
import re
from typing import Callable

from qwq.verify.ifeval.text import (count_sentences, count_words, detect_language, split_paragraphs_by_blank_line,
                                    split_paragraphs_by_divider, words)
from qwq.utils.errors import QwqError

RELATIONS = ("less than", "at least")
CONSTRAINED_RESPONSES = ("My answer is yes.", "My answer is no.", "My answer is maybe.")


class InstructionError(QwqError):
    """An unknown instruction id, or arguments that do not fit it (names the id and the argument)."""


def _compare(actual: int, relation: str, threshold: int, instruction: str) -> bool:
    if relation == "less than":
        return actual < threshold
    if relation == "at least":
        return actual >= threshold
    raise InstructionError(f"{instruction}: relation must be one of {RELATIONS}, got {relation!r}")


def _word_pattern(keyword: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(keyword.strip()) + r"(?!\w)", re.IGNORECASE)


# ---------------------------------------------------------------- the checkers


def no_comma(response: str) -> bool:
    return "," not in response


def number_words(response: str, num_words: int, relation: str) -> bool:
    return _compare(count_words(response), relation, int(num_words), "length_constraints:number_words")


def number_sentences(response: str, num_sentences: int, relation: str) -> bool:
    return _compare(count_sentences(response), relation, int(num_sentences), "length_constraints:number_sentences")


def number_paragraphs(response: str, num_paragraphs: int) -> bool:
    paragraphs = split_paragraphs_by_divider(response)
    return paragraphs is not None and len(paragraphs) == int(num_paragraphs)


def nth_paragraph_first_word(response: str, num_paragraphs: int, nth_paragraph: int, first_word: str) -> bool:
    paragraphs = split_paragraphs_by_blank_line(response)
    nth = int(nth_paragraph)
    if len(paragraphs) != int(num_paragraphs) or not 1 <= nth <= len(paragraphs):
        return False
    tokens = words(paragraphs[nth - 1])
    return bool(tokens) and tokens[0].lower() == first_word.strip().lower()


def forbidden_words(response: str, forbidden_words: list[str]) -> bool:
    return not any(_word_pattern(w).search(response) for w in forbidden_words)


def keyword_existence(response: str, keywords: list[str]) -> bool:
    return all(_word_pattern(k).search(response) for k in keywords)


def keyword_frequency(response: str, keyword: str, frequency: int, relation: str) -> bool:
    return _compare(len(_word_pattern(keyword).findall(response)), relation, int(frequency), "keywords:frequency")


def letter_frequency(response: str, letter: str, let_frequency: int, let_relation: str) -> bool:
    if len(letter.strip()) != 1:
        raise InstructionError(f"keywords:letter_frequency: letter must be one character, got {letter!r}")
    count = response.lower().count(letter.strip().lower())
    return _compare(count, let_relation, int(let_frequency), "keywords:letter_frequency")


def number_highlighted_sections(response: str, num_highlights: int) -> bool:
    single = [h for h in re.findall(r"\*[^\n*]*\*", response) if h.strip("*").strip()]
    double = [h for h in re.findall(r"\*\*[^\n*]*\*\*", response) if h[2:-2].strip()]
    return len(single) + len(double) >= int(num_highlights)


def number_bullet_lists(response: str, num_bullets: int) -> bool:
    stars = re.findall(r"^\s*\*[^*].*$", response, flags=re.MULTILINE)
    dashes = re.findall(r"^\s*-.*$", response, flags=re.MULTILINE)
    return len(stars) + len(dashes) == int(num_bullets)


def multiple_sections(response: str, num_sections: int, section_spliter: str) -> bool:
    splitter = re.escape(section_spliter.strip())
    parts = re.split(r"\s?" + splitter + r"\s?\d+\s?", response)
    return len(parts) - 1 >= int(num_sections)


def title(response: str) -> bool:
    return any(t.strip("<>").strip() for t in re.findall(r"<<[^\n]+>>", response))


def json_format(response: str) -> bool:
    body = response.strip()
    for fence in ("```json", "```Json", "```JSON", "```"):
        body = body.removeprefix(fence)
    body = body.removesuffix("```").strip()
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def constrained_response(response: str) -> bool:
    return any(option in response.strip() for option in CONSTRAINED_RESPONSES)


def number_placeholders(response: str, num_placeholders: int) -> bool:
    return len(re.findall(r"\[.*?\]", response)) >= int(num_placeholders)


def postscript(response: str, postscript_marker: str) -> bool:
    marker = postscript_marker.strip()
    lowered = response.lower()
    if marker == "P.P.S":
        pattern = r"\s*p\.\s?p\.\s?s.*$"
    elif marker == "P.S.":
        pattern = r"\s*p\.\s?s\..*$"
    else:
        pattern = r"\s*" + re.escape(marker.lower()) + r".*$"
    return re.search(pattern, lowered, flags=re.MULTILINE) is not None


def repeat_prompt(response: str, prompt_to_repeat: str) -> bool:
    return response.strip().lower().startswith(prompt_to_repeat.strip().lower())


def two_responses(response: str) -> bool:
    parts = response.split("******")
    kept = []
    for i, part in enumerate(parts):
        if part.strip():
            kept.append(part.strip())
        elif 0 < i < len(parts) - 1:
            return False
    return len(kept) == 2 and kept[0] != kept[1]


def end_checker(response: str, end_phrase: str) -> bool:
    return response.strip().strip('"').lower().endswith(end_phrase.strip().lower())


def quotation(response: str) -> bool:
    body = response.strip()
    return len(body) > 1 and body[0] == '"' and body[-1] == '"'


def english_lowercase(response: str) -> bool:
    return response.islower() and detect_language(response) in ("en", None)


def english_capital(response: str) -> bool:
    return response.isupper() and detect_language(response) in ("en", None)


def capital_word_frequency(response: str, capital_frequency: int, capital_relation: str) -> bool:
    capitals = [w for w in words(response) if w.isupper()]
    return _compare(len(capitals), capital_relation, int(capital_frequency), "change_case:capital_word_frequency")


def response_language(response: str, language: str) -> bool:
    detected = detect_language(response)
    return detected is None or detected == language.strip().lower()  # undecidable counts as followed (reference)


CHECKERS: dict[str, Callable[..., bool]] = {
    "punctuation:no_comma": no_comma,
    "length_constraints:number_words": number_words,
    "length_constraints:number_sentences": number_sentences,
    "length_constraints:number_paragraphs": number_paragraphs,
    "length_constraints:nth_paragraph_first_word": nth_paragraph_first_word,
    "keywords:forbidden_words": forbidden_words,
    "keywords:existence": keyword_existence,
    "keywords:frequency": keyword_frequency,
    "keywords:letter_frequency": letter_frequency,
    "detectable_format:number_highlighted_sections": number_highlighted_sections,
    "detectable_format:number_bullet_lists": number_bullet_lists,
    "detectable_format:multiple_sections": multiple_sections,
    "detectable_format:title": title,
    "detectable_format:json_format": json_format,
    "detectable_format:constrained_response": constrained_response,
    "detectable_content:number_placeholders": number_placeholders,
    "detectable_content:postscript": postscript,
    "combination:repeat_prompt": repeat_prompt,
    "combination:two_responses": two_responses,
    "startend:end_checker": end_checker,
    "startend:quotation": quotation,
    "change_case:english_lowercase": english_lowercase,
    "change_case:english_capital": english_capital,
    "change_case:capital_word_frequency": capital_word_frequency,
    "language:response_language": response_language,
}
