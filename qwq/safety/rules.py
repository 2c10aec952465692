"""The rule layer: scores each category on sentence windows of a conversation or a response.

Why windows: a chain-of-thought-hijacking prompt hides one harmful sentence inside pages of harmless reasoning, and
an average over the whole text would dilute it; the best-scoring window is what decides. Why a conversation score
too: multi-turn escalation spreads the topic over early turns and the operational demand over the last one.
Obfuscation that a normaliser can undo cheaply (Unicode look-alikes, zero-width characters, leetspeak inside words,
dotted letters) is undone before matching; everything else is left to the model-based classifier.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from qwq.safety import lexicon as lx

_FLAGS = re.IGNORECASE | re.DOTALL
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"), None)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-"})
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_WORD = re.compile(r"\b(?=[a-z0-9@$]*[a-z])(?=[a-z0-9@$]*[013457@$])[a-z0-9@$]{3,}\b")
_DOTTED = re.compile(r"\b(?:[a-z][.\-_* ]){2,}[a-z]\b")
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+|;\s+|:\s+(?=[A-Z])")

# Weights. Tuned on the dev half of the shipped red-team set only (see benchmarks/bench_redteam.py).
W_STRONG, W_WEAK, W_ACT, W_REQUEST, W_OPERATIONAL, W_INTENT, W_TARGET, W_JAILBREAK = 2.0, 1.0, 1.5, 1.0, 1.0, 1.5, 0.5, 1.0
W_PROTECTIVE = 2.5
# Content categories: the text itself is the harm (hateful or sexualising language), not instructions for one.
CONTENT_CATEGORIES = ("hate", "sexual_minors")
W_CONTENT = 1.0
THRESHOLD = 4.5
# Where one miss costs most, a category needs less evidence (subtracted from THRESHOLD).
SEVERITY_OFFSET = {"sexual_minors": 1.5, "self_harm": 1.0, "cbrn": 0.5}


def threshold(category: str) -> float:
    return THRESHOLD - SEVERITY_OFFSET.get(category, 0.0)

# Marks of a procedure in a response: each kind found adds W_PROCEDURE_EACH (capped), so a numbered list alone
# (a history timeline) weighs little and numbered steps with quantities and lab verbs weigh a lot.
_PROCEDURE_KINDS = (
    r"(?:^|\n|\. )\s*(?:step\s*\d+|\d+[.)]\s+\w)",
    r"\b\d+(?:\.\d+)?\s?(?:g|grams?|mg|kg|ml|l|liters?|litres?|°\s?[cf]|c|f|degrees|psi|%|mm|cm|inch(?:es)?)\b",
    r"\b(?:mix|heat|add|combine|dissolve|filter|distil+|attach|connect|pack|seal|wire|solder|drill|stir|boil|"
    r"evaporate|crystalli[sz]e|grind|pour|cool|extract|purify)\b",
    r"```|\bimport (?:os|socket|subprocess|ctypes|requests)\b|\bdef \w+\(",
)
W_PROCEDURE_EACH, W_PROCEDURE_MAX = 1.0, 2.5


@dataclass
class CategoryScore:
    category: str
    score: float
    window: str
    evidence: list[str] = field(default_factory=list)


def normalize(text: str) -> str:
    """Lower-case NFKC text with look-alike quotes folded and invisible characters removed."""
    text = unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH).translate(_QUOTES).lower()
    return re.sub(r"[ \t]+", " ", text)


def deobfuscate(text: str) -> str:
    """Undo leetspeak inside words (m3th -> meth) and dotted letters (b.o.m.b -> bomb); plain numbers are kept."""
    text = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), text)
    return _DOTTED.sub(lambda m: re.sub(r"[.\-_* ]", "", m.group(0)), text)


def _alt(patterns: list[str]) -> re.Pattern | None:
    return re.compile("|".join(f"(?:{p})" for p in patterns), _FLAGS) if patterns else None


@lru_cache(maxsize=1)
def _compiled() -> dict:
    cats = {}
    for name, groups in lx.CATEGORY_PATTERNS.items():
        cats[name] = {key: _alt(groups.get(key, []) + (lx.GENERIC_ACTS if key == "acts" else []))
                      for key in ("strong", "weak", "acts", "targets")}
    return {
        "cats": cats,
        "request": re.compile(lx.REQUEST, _FLAGS),
        "operational": re.compile(lx.OPERATIONAL, _FLAGS),
        "intent": re.compile(lx.INTENT, _FLAGS),
        "protective": re.compile(lx.PROTECTIVE, _FLAGS),
        "jailbreak": re.compile(lx.JAILBREAK, _FLAGS),
        "refusal": re.compile(lx.REFUSAL, _FLAGS),
        "idioms": _alt(lx.BENIGN_IDIOMS),
        "negated_detail": re.compile(lx.NEGATED_DETAIL, _FLAGS),
        "procedure": [re.compile(p, re.IGNORECASE) for p in _PROCEDURE_KINDS],
    }


def prepare(text: str) -> str:
    """Normalised text with idioms masked and a ruled-out procedure ("no recipes") marked, and its de-obfuscated twin
    appended when it differs."""
    c = _compiled()
    base = c["negated_detail"].sub(" nodetail ", c["idioms"].sub(" ~ ", normalize(text)))
    twin = deobfuscate(base)
    return base if twin == base else f"{base}\n{twin}"


def windows(text: str, size: int = 2, max_chars: int = 600) -> list[str]:
    """Sentences and runs of `size` neighbouring sentences (long sentences are cut into overlapping chunks)."""
    sentences = []
    for s in _SENTENCE.split(text):
        s = s.strip()
        while len(s) > max_chars:
            sentences.append(s[:max_chars])
            s = s[max_chars // 2:]
        if s:
            sentences.append(s)
    out = list(sentences)
    for i in range(len(sentences) - 1):
        out.append(" ".join(sentences[i:i + size]))
    return out or [""]


def is_refusal(text: str) -> bool:
    """Whether a response opens by declining (looked for in its first 400 characters)."""
    return bool(_compiled()["refusal"].search(normalize(text)[:400]))


def score_window(category: str, window: str, *, jailbreak: bool = False, output: bool = False,
                 frame: str | None = None) -> CategoryScore:
    """Score one window. `frame` (the last user turn) supplies request/intent/protective features in conversation
    mode, where `window` holds the whole user side of the conversation."""
    c = _compiled()
    pats = c["cats"][category]
    evidence: list[str] = []
    strong = pats["strong"].search(window)
    weak = None if strong else (pats["weak"].search(window) if pats["weak"] else None)
    if not strong and not weak:
        return CategoryScore(category, 0.0, window)
    score = W_STRONG if strong else W_WEAK
    evidence.append(f"topic:{(strong or weak).group(0)}")
    framed = frame if frame is not None else window
    intent = c["intent"].search(framed)
    operational = c["operational"].search(framed)
    if pats["acts"] is not None and (m := pats["acts"].search(window)):
        score += W_ACT
        evidence.append(f"act:{m.group(0)}")
    elif frame is not None and operational:
        # escalation: the topic was named earlier, the last turn demands the operational detail for it
        score += W_ACT
        evidence.append("act:escalation")
    if output:
        kinds = sum(1 for p in c["procedure"] if p.search(window))
        if kinds:
            score += min(W_PROCEDURE_MAX, kinds * W_PROCEDURE_EACH)
            evidence.append(f"procedure:{kinds}")
        if strong and category in CONTENT_CATEGORIES:
            score += W_CONTENT + W_REQUEST
            evidence.append("content")
    else:
        if m := c["request"].search(framed):
            score += W_REQUEST
            evidence.append(f"request:{m.group(0)}")
        if strong and category in CONTENT_CATEGORIES:
            score += W_CONTENT  # asking for hateful or sexualising content: the matched text is the harm itself
            evidence.append("content")
    if operational:
        score += W_OPERATIONAL
        evidence.append(f"operational:{operational.group(0)}")
    if intent:
        score += W_INTENT
        evidence.append(f"intent:{intent.group(0)}")
    if pats["targets"] is not None and (m := pats["targets"].search(window)):
        score += W_TARGET
        evidence.append(f"target:{m.group(0)}")
    if jailbreak:
        score += W_JAILBREAK
        evidence.append("jailbreak")
    if not intent and not operational and not jailbreak and (m := c["protective"].search(framed)):
        score -= W_PROTECTIVE
        evidence.append(f"protective:{m.group(0)}")
    return CategoryScore(category, score, window, evidence)


def best_scores(texts: list[str], *, output: bool = False, frame: str | None = None,
                jailbreak_text: str | None = None) -> dict[str, CategoryScore]:
    """The highest-scoring window per category over `texts` (each already prepared)."""
    c = _compiled()
    jailbreak = bool(c["jailbreak"].search(jailbreak_text if jailbreak_text is not None else " ".join(texts)))
    best: dict[str, CategoryScore] = {name: CategoryScore(name, 0.0, "") for name in c["cats"]}
    for text in texts:
        # a category whose topic appears nowhere in the text cannot score in any window: skip it (most texts
        # mention no harm topic at all, so this keeps long completions cheap)
        present = [name for name, pats in c["cats"].items()
                   if pats["strong"].search(text) or (pats["weak"] is not None and pats["weak"].search(text))]
        if not present:
            continue
        for w in ([text] if frame is not None else windows(text, max_chars=900 if output else 600)):
            for category in present:
                s = score_window(category, w, jailbreak=jailbreak, output=output, frame=frame)
                if category not in best or s.score > best[category].score:
                    best[category] = s
    return best


def score_conversation(messages: list[dict]) -> dict[str, CategoryScore]:
    """Scores for a user-side check: windows of the last user turn, and (multi-turn) the whole user side framed by
    the last turn, so an escalation that names its topic early and asks for the recipe late is still seen."""
    users = [prepare(str(m.get("content") or "")) for m in messages if m.get("role") == "user"]
    if not users:
        return {}
    last = users[-1]
    scores = best_scores([last])
    if len(users) > 1:
        context = "\n".join(users)
        conv = best_scores([context], frame=last, jailbreak_text=context)
        for name, s in conv.items():
            if s.score > scores[name].score:
                scores[name] = s
    return scores


def score_output(text: str) -> dict[str, CategoryScore]:
    """Scores for a response (or its reasoning): refusals score nothing; procedures on a harmful topic score high."""
    if is_refusal(text):
        return {}
    return best_scores([prepare(text)], output=True)
