"""Personal data in responses: found and masked (the output guard's `redact` verdict).

Documentation placeholders (example.com, 555-01xx numbers) are left alone so code samples survive.
"""

from __future__ import annotations

import re

_EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}\b")
_PLACEHOLDER_DOMAINS = ("example.com", "example.org", "example.net", "test.com", "localhost")
_SSN = re.compile(r"\b(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}\b")
_PHONE = re.compile(r"(?<![\w.])(?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}(?!\w|\.\d)")
_CARD = re.compile(r"\b(?:\d[ -]?){13,19}\b")
_SECRET = re.compile(r"\b(?:sk-[A-Za-z0-9_-]{20,}|AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|xox[baprs]-[A-Za-z0-9-]{10,}|"
                     r"AIza[0-9A-Za-z_-]{35})\b")


def _luhn_ok(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_pii(text: str) -> list[tuple[str, int, int]]:
    """(kind, start, end) spans of personal data or secrets, in text order, non-overlapping."""
    spans: list[tuple[str, int, int]] = []
    for m in _EMAIL.finditer(text):
        if not m.group(0).lower().endswith(_PLACEHOLDER_DOMAINS):
            spans.append(("email", m.start(), m.end()))
    spans += [("ssn", m.start(), m.end()) for m in _SSN.finditer(text)]
    for m in _CARD.finditer(text):
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1:
            spans.append(("card", m.start(), m.end()))
    for m in _PHONE.finditer(text):
        if not re.search(r"555[ .-]?01\d\d", m.group(0)):
            spans.append(("phone", m.start(), m.end()))
    spans += [("secret", m.start(), m.end()) for m in _SECRET.finditer(text)]
    spans.sort(key=lambda s: (s[1], -s[2]))
    kept, end = [], -1
    for kind, s, e in spans:
        if s >= end:
            kept.append((kind, s, e))
            end = e
    return kept


def redact_pii(text: str) -> tuple[str, list[str]]:
    """The text with each span replaced by `[REDACTED <KIND>]`, and the kinds found."""
    spans = find_pii(text)
    out, pos = [], 0
    for kind, s, e in spans:
        out.append(text[pos:s])
        out.append(f"[REDACTED {kind.upper()}]")
        pos = e
    out.append(text[pos:])
    return "".join(out), [k for k, _, _ in spans]
