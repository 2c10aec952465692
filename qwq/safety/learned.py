"""The learned guard: a linear classifier over hashed word and character n-grams, numpy only.

Why this shape: rules match what their author thought of; a linear model over n-grams, trained on a large
compositional corpus (qwq.safety.synth), weighs every word it saw in harmful and harmless contexts, so paraphrases
that share vocabulary or spelling fragments with its training data still score. It is small (a few MB of int8
weights), fast (a few hundred microseconds a request) and needs no torch.

Features. Text is normalised as the rule layer does (NFKC, lower case, invisible characters removed, leetspeak and
dotted letters undone) plus Cyrillic/Greek look-alike letters folded to Latin, then split into sentences. Each
sentence contributes word unigrams + bigrams, ordered pairs of crudely stemmed content words up to PAIR_SPAN
content words apart (function words skipped, so "make a small batch of nerve agent" still pairs *make* with
*nerve*, and "synthesis" pairs like "synthesize": what a request does and what it does it to, however the words
between them vary) and byte 3/4/5-grams, hashed into 2^20
buckets; a text's vector is the sum over its sentences, each feature group divided by the square root of its
n-gram count. Because that is additive over sentences, any run of sentences (a *window*) is scored from
per-sentence sums at no extra cost. FEATURES names this recipe; a weight file trained on another one is refused.

Scoring. Classes are `safe` + the rule layer's categories (softmax). The harm score of a view is
logsumexp(category logits) - safe logit, mapped to a probability by a Platt fit. A text is scored as the most
harmful of: the whole text and every pair of neighbouring sentences (a chain-of-thought-hijacking prompt hides one
harmful sentence in pages of harmless ones; the whole-text average would dilute it, while a pair keeps the buried
request whole). Single sentences are not views of their own: a lone sentence that tells of a harm ("someone opened
a card in my name") outscored the protective question after it, and on the used red-team splits single-sentence
views added 1.2 points of over-refusal for 0.3 points of caught harm.
"""

from __future__ import annotations

import hashlib
import json
import re
import zlib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from qwq.safety import rules
from qwq.safety.verdict import ALLOW, CATEGORIES, Verdict
from qwq.utils.errors import QwqError

SAFE = "safe"
CATEGORY_NAMES = tuple(CATEGORIES)
HASH_BITS = 20
DIM = 1 << HASH_BITS
CHAR_NS = (3, 4, 5)
PAIR_SPAN = 4
FEATURES = f"words1-2+stempairs{PAIR_SPAN}+chars3-5/v2"
# Words skipped when pairing content words (they still count as unigrams and bigrams).
FUNCTION_WORDS = frozenset(
    "a an the to of and or in on at for with from by as is are was were be been it its this that these those i me "
    "my you your we our us so do does did can could would should will just some any up out into about please pls "
    "u ur im i'm there their they them he she his her him".split())
DEFAULT_WEIGHTS = Path(__file__).resolve().parent / "data" / "guard_linear.npz"

_CONFUSABLES = str.maketrans({
    "\u0430": "a", "\u0435": "e", "\u043e": "o", "\u0440": "p", "\u0441": "c", "\u0445": "x", "\u0443": "y",
    "\u0456": "i", "\u0458": "j", "\u04bb": "h", "\u0501": "d", "\u0455": "s", "\u043a": "k", "\u043c": "m",
    "\u043d": "h", "\u0442": "t", "\u0432": "b", "\u03bf": "o", "\u03b1": "a", "\u03b5": "e", "\u03b9": "i",
    "\u03ba": "k", "\u03bd": "v", "\u03c1": "p", "\u03c4": "t", "\u03c5": "u", "\u03c7": "x",
})
_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+|;\s+")
_TOKEN = re.compile(r"\w+(?:'\w+)?")
_MASK = np.uint64(DIM - 1)
_BIGRAM_MUL = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0xBF58476D1CE4E5B9)
_CHAR_MUL = np.uint64(1099511628211)
_PAIR_MUL = np.uint64(0xD6E8FEB86659FD93)


class GuardWeightsError(QwqError):
    """The learned guard's weight file is missing or malformed (names the file and field)."""


def prepare(text: str) -> str:
    """The rule layer's normalisation, look-alike letters folded, obfuscation undone."""
    return rules.deobfuscate(rules.normalize(text).translate(_CONFUSABLES))


def split_sentences(prepared: str) -> list[str]:
    return [s for s in (p.strip() for p in _SENTENCE.split(prepared)) if s]


_SUFFIXES = ("esizing", "esized", "esizes", "esize", "izations", "isations", "ization", "isation", "izing", "ising",
             "ations", "ation", "esis", "ized",
             "ised", "izes", "ises", "ize", "ise", "ing", "ers", "ies", "ied", "es", "ed", "er", "ion", "s", "e", "y")


@lru_cache(maxsize=65536)
def stem(token: str) -> str:
    """A crude suffix stripper for pair features: synthesis, synthesize and synthesizing all pair as `synth`."""
    for suffix in _SUFFIXES:
        if token.endswith(suffix) and len(token) - len(suffix) >= 3:
            return token[: -len(suffix)]
    return token


def _mix(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(31))
    h = h * _MIX
    return (h ^ (h >> np.uint64(29))) & _MASK


@lru_cache(maxsize=65536)
def sentence_features(sentence: str) -> tuple[np.ndarray, np.ndarray]:
    """(word bucket ids, char bucket ids) of one prepared sentence, each with repeats (counts matter)."""
    tokens = _TOKEN.findall(sentence)
    if tokens:
        wh = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in tokens), dtype=np.uint64, count=len(tokens))
        stems = [stem(t) for t in tokens if t not in FUNCTION_WORDS]
        content = np.fromiter((zlib.crc32(t.encode("utf-8")) for t in stems), dtype=np.uint64, count=len(stems))
        pairs = [content[:-d] * _PAIR_MUL + content[d:] + np.uint64(2) for d in range(1, PAIR_SPAN + 1)
                 if len(content) > d]
        words = np.concatenate([wh, wh[:-1] * _BIGRAM_MUL + wh[1:] + np.uint64(1), *pairs])
        word_ids = _mix(words).astype(np.int64)
    else:
        word_ids = np.zeros(0, dtype=np.int64)
    b = np.frombuffer((" " + " ".join(tokens) + " ").encode("utf-8"), dtype=np.uint8).astype(np.uint64)
    grams = []
    for n in CHAR_NS:
        if len(b) < n:
            continue
        h = np.full(len(b) - n + 1, np.uint64(n), dtype=np.uint64)
        for k in range(n):
            h = h * _CHAR_MUL + b[k:len(b) - n + 1 + k]
        grams.append(h + np.uint64(0x5BD1E995))
    char_ids = _mix(np.concatenate(grams)).astype(np.int64) if grams else np.zeros(0, dtype=np.int64)
    return word_ids, char_ids


def text_features(text: str) -> tuple[np.ndarray, np.ndarray]:
    """All word and char bucket ids of a raw text (the training view of one example)."""
    feats = [sentence_features(s) for s in split_sentences(prepare(text))] or [sentence_features("")]
    return np.concatenate([f[0] for f in feats]), np.concatenate([f[1] for f in feats])


def _quantise(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """int8 weights and a per-column scale (symmetric, max-abs)."""
    w2 = w.reshape(len(w), -1)
    scale = (np.maximum(np.abs(w2).max(axis=0), 1e-12) / 127.0).astype(np.float32)
    return np.clip(np.rint(w2 / scale), -127, 127).astype(np.int8), scale


def _lookup(rows: np.ndarray) -> np.ndarray:
    table = np.full(DIM, len(rows), dtype=np.int32)  # buckets without a weight map to an extra zero row
    table[rows] = np.arange(len(rows), dtype=np.int32)
    return table


@dataclass
class LinearGuardModel:
    """Two heads over the hashed features.

    Harm head: one logit from word + char features (`harm_rows` = the buckets that have a weight, int8 `harm_w`
    times `harm_scale`), plus, when `deep_w` is given, a small hidden layer over the same features (int8 `deep_w`
    [len(harm_rows), hidden] times `deep_scale`, then `relu(. + deep_bias) . deep_out`). Why the hidden layer: harm
    is a conjunction (a dangerous object AND a request to make or use it), and a linear model that also sees the same
    objects in history questions and the same request frames around cakes cannot express "both"; a hidden unit can.
    Category head: softmax over the categories from word features (`cat_rows`, `cat_w` [len, n_categories]); it
    names the category of what the harm head flags.
    """

    harm_rows: np.ndarray
    harm_w: np.ndarray
    harm_scale: np.ndarray
    harm_bias: float
    cat_rows: np.ndarray
    cat_w: np.ndarray
    cat_scale: np.ndarray
    cat_bias: np.ndarray
    platt: tuple[float, float] = (1.0, 0.0)
    threshold_input: float = 0.5
    threshold_output: float = 0.5
    meta: dict = field(default_factory=dict)
    deep_w: np.ndarray | None = None
    deep_scale: np.ndarray | None = None
    deep_bias: np.ndarray | None = None
    deep_out: np.ndarray | None = None

    @property
    def hidden(self) -> int:
        return 0 if self.deep_w is None else int(self.deep_w.shape[1])

    def __post_init__(self):
        h = np.zeros(len(self.harm_rows) + 1, dtype=np.float32)
        h[:-1] = self.harm_w.reshape(-1).astype(np.float32) * np.float32(self.harm_scale.reshape(-1)[0])
        c = np.zeros((len(self.cat_rows) + 1, len(CATEGORY_NAMES)), dtype=np.float32)
        c[:-1] = self.cat_w.astype(np.float32) * self.cat_scale.astype(np.float32)
        self._h, self._c = h, c
        self._hl, self._cl = _lookup(self.harm_rows), _lookup(self.cat_rows)
        self._cb = self.cat_bias.astype(np.float32)
        d = np.zeros((len(self.harm_rows) + 1, self.hidden), dtype=np.float32)
        if self.hidden:
            d[:-1] = self.deep_w.astype(np.float32) * self.deep_scale.astype(np.float32)
        self._d = d
        self._cache: dict[str, tuple] = {}

    # ------------------------------------------------------------------ persistence
    @classmethod
    def from_float(cls, harm_rows, harm_w, harm_bias, cat_rows, cat_w, cat_bias, *, deep=None, **kw) -> "LinearGuardModel":
        """`deep`: None, or (weights [len(harm_rows), hidden], hidden bias, output weights) in float."""
        hq, hs = _quantise(np.asarray(harm_w, dtype=np.float64))
        cq, cs = _quantise(np.asarray(cat_w, dtype=np.float64))
        if deep is not None:
            dq, ds = _quantise(np.asarray(deep[0], dtype=np.float64))
            kw.update(deep_w=dq, deep_scale=ds, deep_bias=np.asarray(deep[1], np.float32),
                      deep_out=np.asarray(deep[2], np.float32))
        return cls(np.asarray(harm_rows, np.int32), hq.reshape(-1), hs, float(harm_bias), np.asarray(cat_rows, np.int32),
                   cq, cs, np.asarray(cat_bias, np.float32), **kw)

    _FIELDS = ("harm_rows", "harm_w", "harm_scale", "harm_bias", "cat_rows", "cat_w", "cat_scale", "cat_bias",
               "platt", "thresholds", "categories")

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez_compressed(tmp, harm_rows=self.harm_rows, harm_w=self.harm_w, harm_scale=self.harm_scale,
                            harm_bias=np.float64(self.harm_bias), cat_rows=self.cat_rows, cat_w=self.cat_w,
                            cat_scale=self.cat_scale, cat_bias=self.cat_bias,
                            platt=np.asarray(self.platt, dtype=np.float64),
                            thresholds=np.asarray([self.threshold_input, self.threshold_output], dtype=np.float64),
                            categories=np.asarray(CATEGORY_NAMES),
                            **({} if not self.hidden else {"deep_w": self.deep_w, "deep_scale": self.deep_scale,
                                                           "deep_bias": self.deep_bias, "deep_out": self.deep_out}),
                            meta=np.asarray(json.dumps({**self.meta, "features": FEATURES}, sort_keys=True)))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path | None = None) -> "LinearGuardModel":
        path = Path(path) if path else DEFAULT_WEIGHTS
        try:
            z = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:
            raise GuardWeightsError(f"{path}: cannot read guard weights ({exc})") from None
        with z:
            missing = [k for k in cls._FIELDS if k not in z]
            if missing:
                raise GuardWeightsError(f"{path}: missing field(s) {', '.join(missing)}")
            cats = tuple(str(c) for c in z["categories"])
            if cats != CATEGORY_NAMES:
                raise GuardWeightsError(f"{path}: field categories {cats} does not match the guard's {CATEGORY_NAMES}")
            for name, rows, shape in (("harm_w", "harm_rows", (len(z["harm_rows"]),)),
                                      ("cat_w", "cat_rows", (len(z["cat_rows"]), len(cats)))):
                if z[name].shape != shape or z[name].dtype != np.int8:
                    raise GuardWeightsError(f"{path}: field {name} is {z[name].shape} {z[name].dtype}, expected "
                                            f"{shape} int8 (one row per entry of {rows})")
            meta = json.loads(str(z["meta"])) if "meta" in z else {}
            if meta.get("features") != FEATURES:
                raise GuardWeightsError(f"{path}: field meta.features is {meta.get('features')!r}, but this guard "
                                        f"computes {FEATURES!r}: retrain with benchmarks/train_guard.py")
            deep = {}
            if "deep_w" in z:
                hidden = z["deep_w"].shape[1] if z["deep_w"].ndim == 2 else -1
                if z["deep_w"].shape != (len(z["harm_rows"]), hidden) or z["deep_w"].dtype != np.int8:
                    raise GuardWeightsError(f"{path}: field deep_w is {z['deep_w'].shape} {z['deep_w'].dtype}, expected "
                                            f"({len(z['harm_rows'])}, hidden) int8 (one row per entry of harm_rows)")
                for name in ("deep_scale", "deep_bias", "deep_out"):
                    if name not in z or z[name].shape != (hidden,):
                        raise GuardWeightsError(f"{path}: field {name} missing or not of shape ({hidden},)")
                deep = {k: z[k] for k in ("deep_w", "deep_scale", "deep_bias", "deep_out")}
            platt, th = z["platt"], z["thresholds"]
            return cls(z["harm_rows"], z["harm_w"], z["harm_scale"], float(z["harm_bias"]), z["cat_rows"], z["cat_w"],
                       z["cat_scale"], z["cat_bias"], (float(platt[0]), float(platt[1])), float(th[0]), float(th[1]),
                       {**meta, "path": str(path)}, **deep)

    def digest(self) -> str:
        """SHA-256 of the quantised parameters (what a reproduction must match)."""
        h = hashlib.sha256()
        for a in (self.harm_rows.astype(np.int32), self.harm_w, self.harm_scale.astype(np.float32),
                  np.float64(self.harm_bias), self.cat_rows.astype(np.int32), self.cat_w,
                  self.cat_scale.astype(np.float32), self.cat_bias.astype(np.float32)):
            h.update(np.ascontiguousarray(a).tobytes())
        if self.hidden:
            for a in (self.deep_w, self.deep_scale, self.deep_bias, self.deep_out):
                h.update(np.ascontiguousarray(a, dtype=a.dtype).tobytes())
        return h.hexdigest()

    # ------------------------------------------------------------------ scoring
    def _sentence_sums(self, sentence: str) -> tuple:
        """(harm sum over words, n words, harm sum over chars, n chars, category sums over words, hidden-layer sums
        over words, over chars) of a sentence."""
        hit = self._cache.get(sentence)
        if hit is None:
            wid, cid = sentence_features(sentence)
            wr, cr = self._hl[wid], self._hl[cid]
            hit = (float(self._h[wr].sum()), len(wid), float(self._h[cr].sum()), len(cid),
                   self._c[self._cl[wid]].sum(axis=0), self._d[wr].sum(axis=0), self._d[cr].sum(axis=0))
            if len(self._cache) > 50000:
                self._cache.clear()
            self._cache[sentence] = hit
        return hit

    def _view(self, sums: list[tuple]) -> tuple[float, np.ndarray]:
        nw = max(1, sum(s[1] for s in sums))
        nc = max(1, sum(s[3] for s in sums))
        harm = self.harm_bias + sum(s[0] for s in sums) / np.sqrt(nw) + sum(s[2] for s in sums) / np.sqrt(nc)
        if self.hidden:
            pre = self.deep_bias + sum(s[5] for s in sums) / np.sqrt(nw) + sum(s[6] for s in sums) / np.sqrt(nc)
            harm += float((np.maximum(pre, 0.0) * self.deep_out).sum())
        cat = self._cb + sum(s[4] for s in sums) / np.sqrt(nw)
        return float(harm), cat

    def probability(self, score: float) -> float:
        a, b = self.platt
        return float(1.0 / (1.0 + np.exp(-min(50.0, max(-50.0, a * score + b)))))

    def score_texts(self, texts: list[str], *, windows: bool = True, singles: bool = True) -> tuple[float, str | None, str]:
        """(harm score, category, view) of the most harmful view over `texts`. Each text is scored whole and, with
        `windows`, as every pair of neighbouring sentences and (with `singles`) every sentence."""
        best = (-np.inf, None, "")
        for text in texts:
            sentences = split_sentences(prepare(text)) or [""]
            sums = [self._sentence_sums(s) for s in sentences]
            views = [(0, len(sums))]
            if windows and len(sums) > 1:
                views += [(i, i + 2) for i in range(len(sums) - 1)]
                if singles:
                    views += [(i, i + 1) for i in range(len(sums))]
            for lo, hi in views:
                harm, cat = self._view(sums[lo:hi])
                if harm > best[0]:
                    best = (harm, CATEGORY_NAMES[int(np.argmax(cat))], " ".join(sentences[lo:hi])[:300])
        return best

    def conversation_score(self, messages: list[dict]) -> tuple[float, str | None, str]:
        """(harm score, category, view) of a conversation as the input check reads it (see conversation_texts)."""
        texts = conversation_texts(messages)
        return self.score_texts(texts, singles=False) if texts else (-np.inf, None, "")

    def text_score(self, text: str) -> float:
        """Raw harm score of a whole text (no windows): the training view."""
        return self._view([self._sentence_sums(s) for s in (split_sentences(prepare(text)) or [""])])[0]


def conversation_texts(messages: list[dict]) -> list[str]:
    """What the input check reads: the last user turn, the last two user turns together, all user turns together."""
    users = [str(m.get("content") or "") for m in messages if m.get("role") == "user"]
    if not users:
        return []
    texts = [users[-1]]
    if len(users) > 1:
        texts += ["\n".join(users[-2:]), "\n".join(users)]
    return texts


@lru_cache(maxsize=4)
def load_default(path: str | None = None) -> LinearGuardModel:
    return LinearGuardModel.load(path)


class LearnedGuard:
    """The learned classifier behind the guard interface. Input: refuse when the calibrated harm probability of the
    conversation reaches `threshold_input`. Output: the answer is refused, harmful reasoning is withheld (redact),
    at `threshold_output`; a response that opens by declining is not scored (it names the harm to refuse it)."""

    name = "learned"

    def __init__(self, model: LinearGuardModel | None = None, *, threshold_input: float | None = None,
                 threshold_output: float | None = None):
        self.model = model or load_default()
        self.threshold_input = self.model.threshold_input if threshold_input is None else threshold_input
        self.threshold_output = self.model.threshold_output if threshold_output is None else threshold_output

    def input_probability(self, messages) -> tuple[float, str | None, str]:
        from qwq.safety.guard import as_messages

        score, category, view = self.model.conversation_score(as_messages(messages))
        if category is None:
            return 0.0, None, ""
        return self.model.probability(score), category, view

    def output_probability(self, text: str) -> tuple[float, str | None, str]:
        if not text.strip() or rules.is_refusal(text):
            return 0.0, None, ""
        # no single-sentence windows: a safe model's thinking restates the request in one sentence before it
        # declines; procedures span several sentences, so pairs and the whole text are what carry them
        score, category, view = self.model.score_texts([text], singles=False)
        return self.model.probability(score), category, view

    def check_input(self, messages) -> Verdict:
        p, category, view = self.input_probability(messages)
        if p < self.threshold_input:
            return ALLOW
        return Verdict("refuse", category, f"classifier: {category} (p={p:.2f})", p, self.name,
                       details={"probability": p, "evidence": [view]})

    def check_output(self, text: str, *, reasoning: str | None = None, messages=None) -> Verdict:
        from qwq.safety.guard import THINK_CLOSE, THINK_OPEN, split_thinking, withheld_reasoning

        if reasoning is None:
            reasoning, answer = split_thinking(text)
        else:
            answer = text
        p, category, view = self.output_probability(answer)
        if p >= self.threshold_output:
            return Verdict("refuse", category, f"response contains {category} content (p={p:.2f})", p, self.name,
                           details={"probability": p, "evidence": [view], "part": "answer"})
        if reasoning:
            rp, rcat, rview = self.output_probability(reasoning)
            if rp >= self.threshold_output:
                shown = withheld_reasoning(rcat)
                return Verdict("redact", rcat, "withheld: reasoning", rp, self.name,
                               redacted=f"{THINK_OPEN}\n{shown}\n{THINK_CLOSE}\n\n{answer}",
                               details={"probability": rp, "evidence": [rview], "parts": ["reasoning"],
                                        "reasoning": shown, "answer": answer})
        return ALLOW
