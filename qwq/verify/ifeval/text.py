"""Counting words, sentences and paragraphs, and telling the language of a text, for the instruction checkers.

The reference IFEval code counts sentences with NLTK's punkt model, which needs a data download; this is a
rule-based splitter with the same intent: a sentence ends at ., ! or ? followed by a space, a quote or the end,
except after abbreviations, initials, decimals, ellipses inside a sentence, and web addresses. A blank line ends
a sentence too (a heading is not part of the next paragraph's first sentence).
"""

from __future__ import annotations

import functools
import re

_WORD = re.compile(r"\w+")
_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "inc", "ltd", "co", "corp", "capt", "lt",
    "gen", "col", "sgt", "mt", "no", "fig", "al", "approx", "dept", "est", "jan", "feb", "mar", "apr", "jun",
    "jul", "aug", "sep", "sept", "oct", "nov", "dec", "e.g", "i.e", "ph.d", "u.s", "u.k", "a.m", "p.m",
}
_TERMINAL = re.compile(r"([.!?]+)([\"'\u201d\u2019)\]]*)(?=\s|$)")


def count_words(text: str) -> int:
    """Runs of word characters (letters, digits, underscore), as the reference's `\\w+` tokenizer counts them."""
    return len(_WORD.findall(text))


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def split_sentences(text: str) -> list[str]:
    sentences: list[str] = []
    for block in re.split(r"\n\s*\n", text):
        block = " ".join(block.split())
        start = 0
        for match in _TERMINAL.finditer(block):
            end = match.end()
            if match.group(1) == "." and _is_abbreviation(block, match.start()):
                continue
            piece = block[start:end].strip()
            if piece:
                sentences.append(piece)
            start = end
        tail = block[start:].strip()
        if tail and _WORD.search(tail):
            sentences.append(tail)
    return sentences


def _is_abbreviation(block: str, dot: int) -> bool:
    token = re.search(r"([\w.]+)$", block[:dot])
    if not token:
        return False
    word = token.group(1).lower().strip(".")
    if word in _ABBREVIATIONS:
        return True
    if len(word) == 1 and word.isalpha():  # an initial: "J. R. R. Tolkien"
        return True
    return False


def count_sentences(text: str) -> int:
    return len(split_sentences(text))


def split_paragraphs_by_divider(text: str) -> list[str] | None:
    """Paragraphs separated by markdown dividers `***`; None when an inner paragraph is empty (malformed)."""
    parts = re.split(r"\s?\*\*\*\s?", text)
    kept = []
    for i, part in enumerate(parts):
        if part.strip():
            kept.append(part)
        elif 0 < i < len(parts) - 1:
            return None
    return kept


def split_paragraphs_by_blank_line(text: str) -> list[str]:
    return [p for p in re.split(r"\n\s*\n", text) if p.strip()]


@functools.lru_cache(maxsize=1)
def _detector_factory():
    try:
        from langdetect import DetectorFactory
        from langdetect.detector_factory import PROFILES_DIRECTORY
    except ImportError as exc:
        from qwq.utils.errors import QwqError

        raise QwqError("the language checkers need the 'langdetect' package (pip install langdetect)") from exc
    factory = DetectorFactory()
    factory.load_profile(PROFILES_DIRECTORY)
    factory.set_seed(0)  # langdetect is randomised; a fixed seed makes a verdict reproducible
    return factory


def detect_language(text: str) -> str | None:
    """ISO 639-1 code of the text's language (zh-cn / zh-tw reported as zh), or None when undecidable."""
    from langdetect.lang_detect_exception import LangDetectException

    detector = _detector_factory().create()
    detector.append(text)
    try:
        code = detector.detect()
    except LangDetectException:
        return None
    return "zh" if code.startswith("zh") else code
