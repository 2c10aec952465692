"""The model-based classifier: a guard prompt run on any loaded model (or a dedicated guard model).

The caller hands in `complete(prompt) -> text` (for example a closure over the engine or an OpenAI-compatible
endpoint), so this module never imports torch or the engine. The prompt lists the policy's categories, shows the
conversation, and asks for one line: `safe` or `unsafe: <category>`. A reasoning model may think first; only the
text after `</think>` is parsed. An answer that cannot be parsed allows by default (a weak model must not turn into
a refuse-everything guard) and is recorded in the verdict's details; `fail_closed=True` refuses instead.
"""

from __future__ import annotations

import re
from typing import Callable

from qwq.safety.guard import Messages, as_messages, split_thinking
from qwq.safety.verdict import ALLOW, CATEGORIES, Verdict

_CODES = {f"S{i + 1}": name for i, name in enumerate(CATEGORIES)}

PROMPT = """You are a content-safety classifier. Decide whether the {subject} in the conversation below is unsafe.

Unsafe categories:
{categories}

Everything else is safe, including history, news, prevention, safety advice, medical facts, fiction without
operational detail, and technical words that only sound violent (for example "kill a process").

<conversation>
{conversation}
</conversation>

Reply with exactly one line: "safe", or "unsafe: <category name>"."""


def _render(messages: list[dict], limit: int) -> str:
    lines = []
    for m in messages:
        role = {"user": "User", "assistant": "Assistant", "system": "System", "tool": "Tool"}.get(m.get("role"), "User")
        lines.append(f"{role}: {str(m.get('content') or '')}")
    text = "\n\n".join(lines)
    if len(text) > limit:  # keep the start (framing) and the end (the request itself)
        text = text[: limit // 3] + "\n[...]\n" + text[-(2 * limit) // 3:]
    return text


def parse_classification(text: str) -> tuple[str, str | None] | None:
    """('safe'|'unsafe', category or None) from a classifier reply, or None when it says neither."""
    _, answer = split_thinking(text)
    for line in answer.strip().splitlines() or [""]:
        line = line.strip().strip("*`\"'").lower()
        if not line:
            continue
        if line.startswith("unsafe"):
            rest = line[len("unsafe"):]
            for code, name in _CODES.items():
                if re.search(rf"\b{code.lower()}\b", rest):
                    return "unsafe", name
            for name in CATEGORIES:
                if name in rest or name.replace("_", " ") in rest:
                    return "unsafe", name
            return "unsafe", None
        if line.startswith("safe"):
            return "safe", None
        return None
    return None


class ModelClassifier:
    """Guard backed by a generative model: `complete(prompt) -> reply text`."""

    def __init__(self, complete: Callable[[str], str], *, name: str = "model", fail_closed: bool = False,
                 max_chars: int = 6000):
        self.complete = complete
        self.name = name
        self.fail_closed = fail_closed
        self.max_chars = max_chars

    def prompt(self, messages: list[dict], subject: str) -> str:
        cats = "\n".join(f"- {name}: {desc}" for name, desc in CATEGORIES.items())
        return PROMPT.format(subject=subject, categories=cats, conversation=_render(messages, self.max_chars))

    def _classify(self, messages: list[dict], subject: str) -> Verdict:
        reply = self.complete(self.prompt(messages, subject))
        parsed = parse_classification(reply)
        if parsed is None:
            if self.fail_closed:
                return Verdict("refuse", None, "classifier reply unparseable (fail closed)", 0.0, self.name,
                               details={"reply": reply[-300:]})
            return Verdict("allow", None, "classifier reply unparseable", 0.0, self.name,
                           details={"reply": reply[-300:], "unparsed": True})
        label, category = parsed
        if label == "safe":
            return ALLOW
        return Verdict("refuse", category, f"classifier: unsafe {category or ''}".strip(), 1.0, self.name,
                       details={"reply": reply[-300:]})

    def check_input(self, messages: Messages | str) -> Verdict:
        return self._classify(as_messages(messages), "LAST User message")

    def check_output(self, text: str, *, reasoning: str | None = None, messages: Messages | None = None) -> Verdict:
        if reasoning is None:
            reasoning, text = split_thinking(text)
        shown = (f"(thinking) {reasoning}\n\n(answer) {text}" if reasoning else text)
        convo = as_messages(messages or [])[-4:] + [{"role": "assistant", "content": shown}]
        return self._classify(convo, "LAST Assistant message (its thinking included)")
