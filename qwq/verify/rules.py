"""Rule-based checks for stage-2 RL: format, language consistency, length, repetition. Pure functions of text.

- `check_format`: the thinking is closed exactly once, nothing re-opens it, an answer follows (and, for math,
  holds a `\\boxed{}`). Template-aware: QwQ's output starts inside the thinking, with no opening `<think>`.
- `script_share`: the share of letters written in the target script (Latin, Han, Cyrillic...), ignoring code
  blocks, LaTeX and URLs, which are Latin in every language. Language mixing is a known QwQ failure.
- `overlong_penalty`: DAPO's soft overlong punishment: 0 up to `max_length - buffer`, then a linear ramp to -1 at
  `max_length`, -1 beyond.
- `ngram_repetition`: the share of repeated word n-grams (CJK characters count as words); endless loops score
  near 1.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass

from qwq.verify.extract import answer_region, find_boxed

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"


@dataclass(frozen=True)
class RuleResult:
    passed: bool
    reason: str

    @property
    def score(self) -> float:
        return float(self.passed)


def check_format(completion: str, *, starts_in_reasoning: bool = True, require_boxed: bool = False) -> RuleResult:
    """Thinking closed exactly once, never re-opened, a non-empty answer after it (with a box if required).
    With `starts_in_reasoning` the opening `<think>` came from the prompt (it may still be repeated once at the
    very start); without it the response itself must start with `<think>`."""
    body = (completion or "").lstrip()
    if body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN):]
    elif not starts_in_reasoning:
        return RuleResult(False, "the response does not start with <think>")
    if THINK_OPEN in body:
        return RuleResult(False, "<think> is opened again")
    closes = body.count(THINK_CLOSE)
    if closes == 0:
        return RuleResult(False, "the thinking is never closed (no </think>)")
    if closes > 1:
        return RuleResult(False, f"</think> appears {closes} times")
    answer = body.split(THINK_CLOSE, 1)[1]
    if not answer.strip():
        return RuleResult(False, "no answer after the thinking")
    if require_boxed and not any(b.strip() for b in find_boxed(answer)):
        return RuleResult(False, "the answer has no \\boxed{}")
    return RuleResult(True, "thinking closed, answer present")


# ---------------------------------------------------------------- language

SCRIPTS = ("latin", "han", "kana", "hangul", "cyrillic", "greek", "arabic", "hebrew", "devanagari", "bengali",
           "thai", "tamil", "telugu", "kannada", "gujarati", "gurmukhi", "malayalam")
_LANGUAGE_SCRIPT = {
    "en": "latin", "fr": "latin", "de": "latin", "es": "latin", "pt": "latin", "it": "latin", "vi": "latin",
    "pl": "latin", "fi": "latin", "sw": "latin", "nl": "latin", "tr": "latin", "id": "latin",
    "zh": "han", "ja": "kana", "ko": "hangul", "ru": "cyrillic", "uk": "cyrillic", "bg": "cyrillic",
    "el": "greek", "ar": "arabic", "fa": "arabic", "ur": "arabic", "he": "hebrew", "hi": "devanagari",
    "mr": "devanagari", "ne": "devanagari", "bn": "bengali", "th": "thai", "ta": "tamil", "te": "telugu",
    "kn": "kannada", "gu": "gujarati", "pa": "gurmukhi", "ml": "malayalam",
}
_NAME_PREFIX = {"CJK": "han", "HIRAGANA": "kana", "KATAKANA": "kana", "HANGUL": "hangul", "LATIN": "latin",
                "CYRILLIC": "cyrillic", "GREEK": "greek", "ARABIC": "arabic", "HEBREW": "hebrew",
                "DEVANAGARI": "devanagari", "BENGALI": "bengali", "THAI": "thai", "TAMIL": "tamil",
                "TELUGU": "telugu", "KANNADA": "kannada", "GUJARATI": "gujarati", "GURMUKHI": "gurmukhi",
                "MALAYALAM": "malayalam"}
_NOT_PROSE = re.compile(r"```.*?(?:```|$)|`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\\\(.*?\\\)|\\\[.*?\\\]"
                        r"|\\[A-Za-z]+|https?://\S+|<[^>\n]{1,40}>", re.DOTALL)


def script_of(char: str) -> str | None:
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    return _NAME_PREFIX.get(name.split(" ", 1)[0])


def script_for_language(language: str) -> str:
    """ISO 639-1 code or script name -> script name (raises ValueError for neither)."""
    key = language.strip().lower()
    if key in SCRIPTS:
        return key
    if key.split("-")[0] in _LANGUAGE_SCRIPT:
        return _LANGUAGE_SCRIPT[key.split("-")[0]]
    raise ValueError(f"unknown language or script {language!r} (use an ISO 639-1 code or one of {SCRIPTS})")


def script_counts(text: str) -> Counter:
    prose = _NOT_PROSE.sub(" ", text)
    return Counter(s for s in map(script_of, prose) if s is not None)


def dominant_script(text: str) -> str | None:
    counts = script_counts(text)
    if not counts:
        return None
    if counts.get("kana"):  # Japanese mixes kana with Han characters
        counts["kana"] += counts.pop("han", 0)
    return counts.most_common(1)[0][0]


def script_share(text: str, script: str) -> float | None:
    """Share of letters in `script` (Japanese: kana and Han together); None when the text has no letters."""
    counts = script_counts(text)
    total = sum(counts.values())
    if total == 0:
        return None
    hits = counts.get(script, 0) + (counts.get("han", 0) if script == "kana" else 0)
    return hits / total


def language_consistency(completion: str, language: str, *, starts_in_reasoning: bool = True) -> float | None:
    """Share of target-script letters over the thinking and the answer together (1.0 = no mixing)."""
    script = script_for_language(language)
    region = answer_region(completion or "", starts_in_reasoning=starts_in_reasoning)
    return script_share(f"{region.reasoning}\n{region.text}", script)


# ---------------------------------------------------------------- length and repetition


def overlong_penalty(length: int, max_length: int, buffer: int) -> float:
    if max_length <= 0 or buffer < 0 or buffer > max_length:
        raise ValueError(f"need 0 <= buffer <= max_length and max_length > 0 (got {buffer}, {max_length})")
    start = max_length - buffer
    if length <= start:
        return 0.0
    if length > max_length:
        return -1.0
    return (start - length) / buffer


_TOKEN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]|[^\W_]+", re.UNICODE)


def ngram_repetition(text: str, n: int = 4) -> float:
    """1 - distinct n-grams / n-grams, over words (CJK characters are words). 0 for texts shorter than n words."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    tokens = [t.lower() for t in _TOKEN.findall(text or "")]
    if len(tokens) < n:
        return 0.0
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams)
