"""Find the final answer in a completion: the answer region (after `</think>`), boxed answers, "the answer is",
a JSON `"answer"` field, choice letters, GSM8K `####` golds.

Reward-hacking rules live here, because extraction is where they can be enforced cheaply:
- QwQ's output starts inside the thinking (the generation prompt ends with `<think>\\n`), so a completion without
  `</think>` is an unfinished thought and has NO answer, whatever it says; an answer only inside the thinking
  does not count.
- Every `\\boxed{}` of the answer region is a candidate, not just the last: the math verifier requires all the
  distinct ones to be right, so boxing several guesses (or an empty box next to a guess) scores 0.
- There is no "last number in the text" fallback: it rewards digit dumps.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

MAX_ANSWER_CHARS = 1000  # longer "answers" are dumps, not answers; they are also what makes sympy hang


@dataclass(frozen=True)
class AnswerRegion:
    """`text` is where answers may be read from ("" when the thinking never closed)."""

    text: str
    reasoning: str
    finished: bool


@dataclass(frozen=True)
class Extraction:
    """Answer candidates found in a text (`answers` empty when none), how they were found, and why not if not."""

    answers: tuple[str, ...] = ()
    source: str = ""
    reason: str = ""
    distinct: tuple[str, ...] = field(default=(), repr=False)

    @property
    def answer(self) -> str | None:
        """The final answer: the last candidate (None when there is none)."""
        return self.answers[-1] if self.answers else None


def _split_reasoning(text: str, starts_in_reasoning: bool):
    from qwq.tokenizer.reasoning import split_reasoning

    return split_reasoning(text, starts_in_reasoning=starts_in_reasoning)


def answer_region(completion: str, starts_in_reasoning: bool = True) -> AnswerRegion:
    """Split off the thinking. With `starts_in_reasoning` (QwQ's template) a missing `</think>` means unfinished."""
    split = _split_reasoning(completion, starts_in_reasoning)
    if not split.finished and (starts_in_reasoning or split.reasoning):
        return AnswerRegion(text="", reasoning=split.reasoning, finished=False)
    return AnswerRegion(text=split.answer, reasoning=split.reasoning, finished=True)


# ---------------------------------------------------------------- boxed

_BOX_COMMAND = re.compile(r"\\(?:boxed|fbox)\b")


def find_boxed(text: str) -> list[str]:
    """Contents of every `\\boxed{...}` / `\\fbox{...}` (nested braces kept), and of the brace-less `\\boxed 5`."""
    found = []
    for match in _BOX_COMMAND.finditer(text):
        i = match.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, start = 0, i + 1
            for j in range(i, len(text)):
                if text[j] == "{" and (j == 0 or text[j - 1] != "\\"):
                    depth += 1
                elif text[j] == "}" and text[j - 1] != "\\":
                    depth -= 1
                    if depth == 0:
                        found.append(text[start:j].strip())
                        break
            else:
                found.append("")  # an unclosed box is an empty (invalid) answer, not a missing one
        elif i > match.end():
            token = re.match(r"[^\s$]+", text[i:])
            found.append(token.group(0).rstrip(".,") if token else "")
    return found


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{}` / `\\fbox{}` (None when there is none, or it is empty)."""
    boxed = find_boxed(text)
    return boxed[-1] if boxed and boxed[-1] else None


_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is|:|=)\s*:?\s*(?P<ans>[^\n]*)", re.IGNORECASE)


def _clean_phrase_answer(raw: str) -> str:
    s = raw.strip()
    s = re.split(r"(?<=[^\d\\])\.(?:\s|$)|\.\s", s + " ")[0].strip()  # stop at the end of the sentence
    s = s.strip("*").strip()
    if s.startswith("$") and s.count("$") >= 2:
        s = s[1:s.index("$", 1)]
    elif s.startswith("\\(") and "\\)" in s:
        s = s[2:s.index("\\)")]
    elif s.startswith("\\[") and "\\]" in s:
        s = s[2:s.index("\\]")]
    return s.strip().rstrip(".").strip()


def extract_math_answer(text: str) -> Extraction:
    """Answer candidates of a response (the answer region, not the thinking)."""
    boxed = find_boxed(text)
    if boxed:
        return _checked(tuple(boxed), "boxed")
    phrases = [m.group("ans") for m in _ANSWER_IS.finditer(text)]
    if phrases:
        return _checked((_clean_phrase_answer(phrases[-1]),), "answer is")
    gsm = gsm8k_answer(text)
    if gsm is not None:
        return _checked((gsm,), "####")
    stripped = text.strip().strip("$").strip()
    if _looks_like_a_bare_answer(stripped):
        return _checked((stripped,), "whole response")
    return Extraction(reason="no boxed answer, no 'the answer is', no short response")


def _looks_like_a_bare_answer(text: str) -> bool:
    """A response that is nothing but a short formula or number ("18", "\\frac{3}{4}"), not a short sentence."""
    if not text or "\n" in text or len(text) > 40:
        return False
    return len(text.split()) == 1 or bool(re.search(r"[\d\\]", text)) and len(re.findall(r"[A-Za-z]{3,}", text)) <= 1


def _checked(candidates: tuple[str, ...], source: str) -> Extraction:
    if any(not c for c in candidates):
        return Extraction(source=source, reason="empty answer")
    if any(len(c) > MAX_ANSWER_CHARS for c in candidates):
        return Extraction(source=source, reason=f"answer longer than {MAX_ANSWER_CHARS} characters")
    from qwq.verify.normalize import normalize_answer_text

    distinct, seen = [], set()
    for c in candidates:
        key = normalize_answer_text(c)
        if key not in seen:
            seen.add(key)
            distinct.append(c)
    return Extraction(answers=candidates, source=source, distinct=tuple(distinct))


def gsm8k_answer(solution: str) -> str | None:
    """The final answer of a GSM8K solution (`#### 1,234` -> "1234"), None when there is no `####`."""
    match = re.search(r"####\s*([^\n]+)", solution)
    if not match:
        return None
    return match.group(1).strip().replace(",", "").rstrip(".").strip() or None


def gold_answer(gold: str) -> str:
    """A gold given as a full solution is reduced to its answer (last `\\boxed{}`, or `####`); else used as is."""
    boxed = find_boxed(gold)
    if boxed:
        return boxed[-1]
    gsm = gsm8k_answer(gold)
    return gsm if gsm is not None else gold.strip()


# ---------------------------------------------------------------- multiple choice

_JSON_ANSWER = re.compile(r"[\"']answer[\"']\s*:\s*[\"']([^\"'\n]{0,40})[\"']", re.IGNORECASE)
_CHOICE_PHRASE = re.compile(
    r"(?:final\s+answer|answer|correct\s+(?:option|choice)|choice|option)\s*(?:is|:)?\s*:?\s*"
    r"[\(\[*\s]*\$?\\?(?:text|textbf|mathrm)?\{?([A-Za-z])\}?\$?[\)\]*]?(?![A-Za-z])",
    re.IGNORECASE)


def _single_letter(value: str, letters: str) -> str | None:
    s = value.strip().strip("*").strip()
    s = re.sub(r"^\\(?:text|textbf|mathrm)\{(.*)\}$", r"\1", s).strip()
    s = s.strip("()[].: ").strip()
    return s.upper() if len(s) == 1 and s.upper() in letters else None


def extract_choice(text: str, letters: str = "ABCD") -> Extraction:
    """The chosen option letter: a JSON `"answer": "C"` field, then `\\boxed{C}`, then "the answer is (C)", then a
    line holding only the letter. A field or box holding anything but one valid letter gives no answer."""
    letters = letters.upper()
    fields = _JSON_ANSWER.findall(text)
    if fields:
        letter = _single_letter(fields[-1], letters)
        return (Extraction(answers=(letter,), source="json", distinct=(letter,)) if letter
                else Extraction(source="json", reason=f"answer field {fields[-1]!r} is not one of {letters}"))
    try:
        obj = json.loads(text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip())
        if isinstance(obj, dict) and "answer" in obj:
            letter = _single_letter(str(obj["answer"]), letters)
            if letter:
                return Extraction(answers=(letter,), source="json", distinct=(letter,))
            return Extraction(source="json", reason=f"answer field {obj['answer']!r} is not one of {letters}")
    except (ValueError, TypeError):
        pass
    boxed = find_boxed(text)
    if boxed:
        chosen = {_single_letter(b, letters) for b in boxed}
        if None in chosen or len(chosen) != 1:
            return Extraction(source="boxed", reason="boxed answers are not one single option letter")
        letter = chosen.pop()
        return Extraction(answers=(letter,), source="boxed", distinct=(letter,))
    phrases = _CHOICE_PHRASE.findall(text)
    valid = [p.upper() for p in phrases if p.upper() in letters]
    if valid:
        return Extraction(answers=(valid[-1],), source="answer is", distinct=(valid[-1],))
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if lines:
        letter = _single_letter(lines[-1], letters)
        if letter:
            return Extraction(answers=(letter,), source="last line", distinct=(letter,))
    return Extraction(reason="no option letter found")
