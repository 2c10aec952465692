"""What a guard says about a text: allow, refuse or redact, with a category and the reason.

The taxonomy is small on purpose: each category is one kind of harm a refusal is meant to prevent, so the red-team
report can break its rates down by the same names the guard returns.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

Action = Literal["allow", "refuse", "redact"]

# category -> one-line description (used in the model classifier's prompt and in reports)
CATEGORIES: dict[str, str] = {
    "cbrn": "chemical, biological, radiological or nuclear weapons: making, acquiring, enhancing or deploying them",
    "weapons": "conventional weapons and explosives: building bombs, illegal firearm manufacture or modification",
    "violence": "planning or inciting physical harm to people: assault, murder, kidnapping, poisoning a person",
    "cyber": "malware, intrusion into systems or accounts one does not own, credential theft, DDoS",
    "fraud": "scams, phishing, forgery of documents or money, money laundering, identity theft",
    "drugs": "manufacturing illegal drugs, trafficking, dosing someone covertly",
    "self_harm": "methods or encouragement of suicide, self-injury or disordered eating",
    "hate": "hateful, dehumanising or harassing content aimed at people or groups",
    "sexual_minors": "any sexual content involving minors",
    "privacy": "stalking, doxxing, covert tracking or surveillance of a person, exposing personal data",
    "extremism": "terrorist recruitment, propaganda or operational support for violent extremism",
}

# Output-side only: personal data a response leaks. Redacted, not refused.
PII = "pii"

SEVERITY: dict[str, int] = {"allow": 0, "redact": 1, "refuse": 2}


@dataclass(frozen=True)
class Verdict:
    """One guard decision. `redacted` holds the cleaned text when `action == "redact"`."""

    action: Action = "allow"
    category: str | None = None
    reason: str = ""
    score: float = 0.0
    source: str = "rules"
    redacted: str | None = None
    details: dict = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.action == "allow"

    @property
    def refused(self) -> bool:
        return self.action == "refuse"

    def to_dict(self) -> dict:
        return asdict(self)


ALLOW = Verdict()


def most_severe(verdicts: list[Verdict]) -> Verdict:
    """The strictest verdict (refuse > redact > allow); ties keep the first, so callers order by trust."""
    if not verdicts:
        return ALLOW
    return max(verdicts, key=lambda v: (SEVERITY[v.action], v.score))
