"""Language-consistency guard: is the thinking written in the user's script, and where does it switch?

Text analysis (pure, usable offline): code (fenced blocks, inline code, lines that look like code), LaTeX
(`$...$`, `$$...$$`, `\\(...\\)`, `\\[...\\]`, commands) and URLs are not language and are skipped. The rest is
cut into words (a CJK character is a word; elsewhere a run of letters). A word of one letter is a symbol (x, α, n),
as is a word holding digits or underscores (x1, max_len). A switch is a run of at least `min_run` consecutive
words in another script than the target; symbols neither extend nor break a run. So "使用 Python 的 list" is not
mixing, a whole English sentence inside Chinese thinking is.

While thinking, "penalize" subtracts a penalty from the logits of tokens carrying letters of a script the target
does not allow, "mask" forbids them. Latin and Greek letters are always allowed (variables, code, math), as are
Han characters for Japanese; byte fragments of a multi-byte character are judged by the block their first byte
starts, and a token that only continues a character is left alone.
"""

from __future__ import annotations

import codecs
import re
import weakref
from dataclasses import dataclass, field
from typing import Any

from qwq.engine.controls.settings import LanguageGuardSettings
from qwq.engine.controls.tracking import tracker_for
from qwq.engine.hooks import Action, BaseController, SampleState
from qwq.verify.rules import SCRIPTS, script_for_language, script_of

CJK_SCRIPTS = frozenset({"han", "kana", "hangul", "thai"})  # written without spaces between words: a char a word
ALWAYS_ALLOWED = frozenset({"latin", "greek"})
_INLINE_NOT_PROSE = re.compile(
    r"`[^`\n]*`|\$\$.*?\$\$|\$[^$\n]*\$|\\\(.*?\\\)|\\\[.*?\\\]|\\[A-Za-z]+|https?://\S+|<[^>\n]{1,40}>")
_WORD = re.compile(r"\w+", re.UNICODE)
_CODE_KEYWORD = re.compile(r"^\s*(def|class|import|from|return|for|while|if|elif|else|print|int|void|#include|const|"
                           r"let|var|function|public|private|static|fn|func|package|using)\b")
_CODE_SYMBOLS = set("(){}[];=<>")


def allowed_scripts(target: str) -> frozenset[str]:
    extra = {"han"} if target == "kana" else set()
    return frozenset({target} | ALWAYS_ALLOWED | extra)


def _is_code_line(line: str) -> bool:
    if any(script_of(c) in CJK_SCRIPTS for c in line):
        return False
    if line.startswith(("    ", "\t")) and line.strip():
        return True
    if _CODE_KEYWORD.match(line) and any(c in _CODE_SYMBOLS or c == ":" for c in line):
        return True
    return sum(c in _CODE_SYMBOLS for c in line) >= 3


@dataclass
class Switch:
    script: str
    words: int
    excerpt: str

    def to_dict(self) -> dict:
        return {"script": self.script, "words": self.words, "excerpt": self.excerpt}


@dataclass
class LanguageReport:
    target: str
    words: int = 0  # prose words counted (a CJK character is a word)
    target_words: int = 0
    switches: list[Switch] = field(default_factory=list)

    @property
    def target_share(self) -> float | None:
        """Fraction of the prose words in the target script (None: no prose words at all)."""
        return self.target_words / self.words if self.words else None

    @property
    def mixed(self) -> bool:
        return bool(self.switches)

    def to_dict(self) -> dict:
        share = self.target_share
        return {"target_script": self.target, "target_share": None if share is None else round(share, 4),
                "mixed": self.mixed, "switches": len(self.switches),
                "first_switches": [s.to_dict() for s in self.switches[:5]]}


class ScriptScanner:
    """Feeds whole lines; keeps the state that spans lines (inside a code fence or a `$$` block, the open run)."""

    def __init__(self, target: str, min_run: int = 4) -> None:
        self.target, self.min_run = target, min_run
        self.report = LanguageReport(target)
        self._in_fence = False
        self._in_display_math = False
        self._run_script: str | None = None
        self._run_words: list[str] = []
        self._run_reported = False

    def feed_line(self, line: str) -> None:
        stripped = line.strip()
        if stripped.startswith(("```", "~~~")):
            self._in_fence = not self._in_fence
            return
        if self._in_fence:
            return
        if self._in_display_math:
            self._in_display_math = "$$" not in stripped and "\\]" not in stripped
            return
        if stripped.startswith(("$$", "\\[")):
            rest = stripped[2:]
            self._in_display_math = "$$" not in rest and "\\]" not in rest
            return
        if _is_code_line(line):
            return
        self._words(_INLINE_NOT_PROSE.sub(" ", line))

    def feed_text(self, text: str) -> None:
        for line in text.split("\n"):
            self.feed_line(line)

    def _words(self, prose: str) -> None:
        for match in _WORD.finditer(prose):
            word = match.group(0)
            scripts = [script_of(c) for c in word]
            if not word.isalpha() and not any(s in CJK_SCRIPTS for s in scripts):
                continue  # digits / underscores inside: an identifier or a number, not language
            start = 0
            for i in range(1, len(word) + 1):  # cut into runs of one script (CJK text has no spaces)
                if i == len(word) or scripts[i] != scripts[start]:
                    self._segment(word[start:i], scripts[start])
                    start = i

    def _segment(self, letters: str, script: str | None) -> None:
        if script is None:
            return
        if script in CJK_SCRIPTS:
            for char in letters:
                self._word(char, script)
        elif len(letters) > 1:  # a one-letter word is a symbol: x, n, α
            self._word(letters, script)

    def _word(self, word: str, script: str) -> None:
        report = self.report
        report.words += 1
        if script == self.target or (self.target == "kana" and script == "han"):
            report.target_words += 1
            self._run_script, self._run_words, self._run_reported = None, [], False
            return
        if script != self._run_script:
            self._run_script, self._run_words, self._run_reported = script, [], False
        self._run_words.append(word)
        if len(self._run_words) < self.min_run:
            return
        excerpt = ("" if script in CJK_SCRIPTS else " ").join(self._run_words)[:80]
        if not self._run_reported:
            report.switches.append(Switch(script, len(self._run_words), excerpt))
            self._run_reported = True
        else:
            report.switches[-1].words, report.switches[-1].excerpt = len(self._run_words), excerpt


def analyze_language(text: str, language: str, min_run: int = 4) -> LanguageReport:
    """Where `text` leaves the script of `language` (an ISO 639-1 code or a script name)."""
    scanner = ScriptScanner(script_for_language(language), min_run)
    scanner.feed_text(text)
    return scanner.report


def dominant_script(text: str) -> str | None:
    """The script most prose letters of `text` are in (Japanese: kana with its Han characters)."""
    counts: dict[str, int] = {}
    prose = _INLINE_NOT_PROSE.sub(" ", text)
    for char in prose:
        script = script_of(char)
        if script is not None:
            counts[script] = counts.get(script, 0) + 1
    if counts.get("kana"):
        counts["kana"] += counts.pop("han", 0)
    return max(counts, key=counts.get) if counts else None


def user_script(prompt_text: str) -> str:
    """The script of the last user turn of a ChatML prompt (the whole prompt if it has no turns); Latin if none."""
    start = prompt_text.rfind("<|im_start|>user")
    if start >= 0:
        end = prompt_text.find("<|im_end|>", start)
        prompt_text = prompt_text[start + len("<|im_start|>user"):end if end >= 0 else None]
    return dominant_script(prompt_text) or "latin"


# ---------------------------------------------------------------- token scripts (for penalize / mask)

_SCRIPT_CODE = {name: i + 1 for i, name in enumerate(SCRIPTS)}  # 0: no letters / undecidable
_token_scripts: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def _token_script(data: bytes) -> str | None:
    """The first script (other than Latin/Greek, which are always allowed) whose letters a token carries."""
    start = 0
    while start < len(data) and 0x80 <= data[start] < 0xC0:
        start += 1  # continues a character begun by an earlier token: undecidable, skip
    decoder = codecs.getincrementaldecoder("utf-8")(errors="ignore")
    text = decoder.decode(data[start:])
    pending = decoder.getstate()[0]
    if pending:  # an unfinished character: judge it by the smallest code point it can still become
        need = 2 if pending[0] < 0xE0 else 3 if pending[0] < 0xF0 else 4
        text += (pending + b"\x80" * (need - len(pending))).decode("utf-8", errors="ignore")
    first_allowed = None
    for char in text:
        script = script_of(char)
        if script is None:
            continue
        if script not in ALWAYS_ALLOWED:
            return script
        first_allowed = first_allowed or script
    return first_allowed


def token_script_codes(tokenizer: Any):
    """uint8 [vocab]: the script code of each token (0: none), computed once per tokenizer."""
    import numpy as np

    codes = _token_scripts.get(tokenizer)
    if codes is None:
        special = set(getattr(tokenizer, "added_tokens", {}) or {})
        codes = np.zeros(tokenizer.vocab_size, dtype=np.uint8)
        for token_id in range(tokenizer.vocab_size):
            if token_id in special:
                continue
            try:
                data = tokenizer.token_bytes(token_id)
            except Exception:  # an id without bytes (a hole in the vocabulary)
                continue
            script = _token_script(data)
            if script is not None:
                codes[token_id] = _SCRIPT_CODE[script]
        _token_scripts[tokenizer] = codes
    return codes


def foreign_token_bias(tokenizer: Any, target: str, size: int, value: float):
    """[size] float tensor: `value` (negative, or -inf) on tokens of scripts `target` does not allow, 0 elsewhere."""
    import numpy as np
    import torch

    codes = token_script_codes(tokenizer)
    allowed = [_SCRIPT_CODE[s] for s in allowed_scripts(target)] + [0]
    blocked = ~np.isin(codes, allowed)
    bias = torch.zeros(size)
    n = min(size, len(codes))
    bias[:n][torch.from_numpy(blocked[:n])] = value
    return bias


class LanguageGuard(BaseController):
    """Measures (and in "penalize" / "mask" mode steers) the script of the thinking."""

    name = "language_guard"

    def __init__(self, settings: LanguageGuardSettings, state: SampleState) -> None:
        self.settings = settings
        tracker = tracker_for(state)
        if settings.language == "auto":
            self.target = user_script(state.tokenizer.decode(state.prompt_ids))
        else:
            self.target = script_for_language(settings.language)
        self.scanner = ScriptScanner(self.target, settings.min_run)
        self._read = 0  # reasoning deltas of the tracker already taken
        self._line: list[str] = []  # the current, unfinished line of the thinking
        self._bias = None
        self._state = state
        self.steered_steps = 0

    def _scan_lines(self, tracker: Any) -> None:
        """Feed the scanner the thinking's newly completed lines (each character is looked at once)."""
        deltas = tracker.reasoning_deltas
        while self._read < len(deltas):
            delta = deltas[self._read]
            self._read += 1
            cut = delta.rfind("\n")
            if cut < 0:
                self._line.append(delta)
                continue
            self.scanner.feed_text("".join(self._line) + delta[:cut])
            self._line = [delta[cut + 1:]]

    def before_sample(self, state: SampleState, logits: Any) -> Action | None:
        tracker = tracker_for(state)
        self._scan_lines(tracker)
        if self.settings.mode == "report" or not tracker.in_thinking:
            return None
        if self._bias is None or self._bias.shape[-1] != logits.shape[-1]:
            value = float("-inf") if self.settings.mode == "mask" else -self.settings.penalty
            self._bias = foreign_token_bias(state.tokenizer, self.target, logits.shape[-1], value)
        self.steered_steps += 1
        return Action(bias=self._bias)

    def details(self) -> dict:
        self._scan_lines(tracker_for(self._state))
        if self._line:  # the last, unfinished line
            self.scanner.feed_text("".join(self._line))
            self._line = []
        return {"mode": self.settings.mode, **self.scanner.report.to_dict(), "steered_steps": self.steered_steps}
