"""Failure signals of one sample, for the loop and language-mixing rates (QwQ's known failure modes).

- Looping: the last LOOP_TAIL_WORDS words of the output are mostly repeats: at least LOOP_THRESHOLD of their
  LOOP_NGRAM-word n-grams occurred before in that tail. A model stuck in a loop repeats the same sentences
  (share near 1); ordinary prose, even formulaic reasoning, stays far below 0.5.
- Language mixing: at least MIN_FOREIGN_LETTERS letters (a phrase, not a stray symbol) of the thinking and the
  answer are written in a script other than the prompt's (Latin when the prompt has no letters). Greek counts as
  math notation, not as a language, when the target is Latin. Code, LaTeX and URLs are ignored.
"""

from __future__ import annotations

from typing import Sequence

from qwq.verify.rules import dominant_script, ngram_repetition, script_counts

LOOP_TAIL_WORDS = 400
LOOP_NGRAM = 8
LOOP_THRESHOLD = 0.5
MIN_FOREIGN_LETTERS = 10


def is_looping(text: str) -> bool:
    words = (text or "").replace("<think>", " ").replace("</think>", " ").split()
    tail = " ".join(words[-LOOP_TAIL_WORDS:])
    if len(words) < 4 * LOOP_NGRAM:
        return False
    return ngram_repetition(tail, n=LOOP_NGRAM) >= LOOP_THRESHOLD


def prompt_script(messages: Sequence[dict]) -> str:
    text = "\n".join(str(m.get("content") or "") for m in messages if m.get("role", "user") == "user")
    return dominant_script(text) or "latin"


def foreign_letters(text: str, target_script: str) -> int:
    counts = script_counts(text or "")
    ignored = {target_script}
    if target_script == "latin":
        ignored.add("greek")
    if target_script == "kana":  # Japanese writes kanji too
        ignored.add("han")
    return sum(count for script, count in counts.items() if script not in ignored)


def mixes_language(text: str, target_script: str) -> bool:
    return foreign_letters(text, target_script) >= MIN_FOREIGN_LETTERS
