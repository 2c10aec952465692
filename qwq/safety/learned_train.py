"""Training for the learned guard: multinomial logistic regression with L2, full-batch L-BFGS, numpy only.

Deterministic by construction: the corpus comes from a seeded generator, features are hashed with fixed functions
(crc32 and integer mixing, never Python's salted `hash`), sparse products are gathers and `np.add.reduceat` in a
fixed order, and every reduction uses numpy's own pairwise sums (no BLAS, whose threaded reductions may reorder).

Calibration and thresholds come from items the weights never saw (the `heldout` red-team split by default): a
two-parameter Platt fit maps the raw harm score to a probability, then the input threshold is the lowest
probability whose over-refusal on those items stays within the budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from qwq.safety.learned import CATEGORY_NAMES, SAFE, LinearGuardModel, text_features


@dataclass
class Corpus:
    """CSR design matrix over compact columns (`rows` = the hashed buckets kept) plus labels and sample weights."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    rows: np.ndarray
    y: np.ndarray
    sample_weight: np.ndarray

    @property
    def n(self) -> int:
        return len(self.y)


def _group(ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique bucket ids of one feature group and their values count / sqrt(group size)."""
    if not len(ids):
        return ids, np.zeros(0)
    u, cnt = np.unique(ids, return_counts=True)
    return u, cnt / np.sqrt(len(ids))


def build_corpus(rows_of_examples: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray, sample_weight: np.ndarray,
                 *, min_df: int = 2) -> Corpus:
    """CSR from per-example (bucket ids, values); buckets in fewer than `min_df` examples are dropped (they still
    counted in the normalisers, as at inference, where a bucket without a weight adds nothing)."""
    uniq, df = np.unique(np.concatenate([ids for ids, _ in rows_of_examples]), return_counts=True)
    keep = uniq[df >= min_df]
    indptr, indices, data = [0], [], []
    for ids, vals in rows_of_examples:
        pos = np.searchsorted(keep, ids)
        ok = (pos < len(keep)) & (keep[np.minimum(pos, len(keep) - 1)] == ids)
        indices.append(pos[ok])
        data.append(vals[ok])
        indptr.append(indptr[-1] + int(ok.sum()))
    return Corpus(np.asarray(indptr, dtype=np.int64), np.concatenate(indices).astype(np.int64),
                  np.concatenate(data).astype(np.float64), keep.astype(np.int64), np.asarray(y), np.asarray(sample_weight))


def example_features(text: str) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(harm-head features: words + chars merged, category-head features: words) of one text."""
    wid, cid = text_features(text)
    wu, wv = _group(wid)
    cu, cv = _group(cid)
    ids, inv = np.unique(np.concatenate([wu, cu]), return_inverse=True)
    vals = np.zeros(len(ids))
    np.add.at(vals, inv, np.concatenate([wv, cv]))
    return (ids, vals), (wu, wv)


def balanced_weights(harmful: np.ndarray, categories: np.ndarray) -> np.ndarray:
    """Harmful and safe halves weigh the same, and each category the same within the harmful half."""
    w = np.ones(len(harmful))
    n = len(harmful)
    w[~harmful] = 0.5 * n / max(1, (~harmful).sum())
    cats = np.unique(categories[harmful])
    for c in cats:
        sel = harmful & (categories == c)
        w[sel] = 0.5 * n / len(cats) / sel.sum()
    return w


class _Problem:
    """Weighted mean cross-entropy + (l2/2)|W|^2 of a linear model over a Corpus (bias not penalised). One class:
    logistic regression on y in {0, 1}; k > 1 classes: softmax on y in 0..k-1. Sparse products are `np.bincount`
    passes, which sum in array order (deterministic)."""

    def __init__(self, corpus: Corpus, l2: float, n_classes: int):
        self.c = corpus
        self.l2 = l2
        self.k = n_classes
        self.row_of = np.repeat(np.arange(corpus.n), np.diff(corpus.indptr))
        self.n_feat = len(corpus.rows)
        self.sw = corpus.sample_weight / corpus.sample_weight.sum()

    def unpack(self, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return theta[:-self.k].reshape(self.n_feat, self.k), theta[-self.k:]

    def logits(self, W: np.ndarray, b: np.ndarray) -> np.ndarray:
        c = self.c
        Z = np.empty((c.n, self.k))
        for j in range(self.k):
            Z[:, j] = np.bincount(self.row_of, weights=c.data * W[c.indices, j], minlength=c.n)
        return Z + b

    def __call__(self, theta: np.ndarray) -> tuple[float, np.ndarray]:
        W, b = self.unpack(theta)
        Z = self.logits(W, b)
        y = self.c.y
        if self.k == 1:
            z = Z[:, 0]
            loss = (self.sw * (np.logaddexp(0.0, z) - y * z)).sum()
            R = ((1.0 / (1.0 + np.exp(-z)) - y) * self.sw)[:, None]
        else:
            Z -= Z.max(axis=1, keepdims=True)
            logp = Z - np.log(np.exp(Z).sum(axis=1, keepdims=True))
            loss = -(self.sw * logp[np.arange(self.c.n), y]).sum()
            R = np.exp(logp)
            R[np.arange(self.c.n), y] -= 1.0
            R *= self.sw[:, None]
        loss += 0.5 * self.l2 * (W * W).sum()
        gW = np.empty_like(W)
        for j in range(self.k):
            gW[:, j] = np.bincount(self.c.indices, weights=self.c.data * R[self.row_of, j], minlength=self.n_feat)
        gW += self.l2 * W
        return float(loss), np.concatenate([gW.ravel(), R.sum(axis=0)])


def lbfgs(fun, x0: np.ndarray, *, max_iter: int = 200, m: int = 10, tol: float = 1e-6, log=None) -> np.ndarray:
    """Minimise a smooth convex function with limited-memory BFGS and Armijo backtracking."""
    x = x0.copy()
    f, g = fun(x)
    S, Y = [], []
    for it in range(max_iter):
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(S), reversed(Y)):
            rho = 1.0 / (y * s).sum()
            a = rho * (s * q).sum()
            alphas.append((a, rho, s, y))
            q -= a * y
        if S:
            q *= (S[-1] * Y[-1]).sum() / (Y[-1] * Y[-1]).sum()
        for a, rho, s, y in reversed(alphas):
            q += s * (a - rho * (y * q).sum())
        d = -q
        slope = (g * d).sum()
        if slope >= 0:  # not a descent direction: restart from the gradient
            S, Y, d, slope = [], [], -g, -(g * g).sum()
        step = 1.0 if S else min(1.0, 1.0 / np.sqrt((g * g).sum()))
        while True:
            x_new = x + step * d
            f_new, g_new = fun(x_new)
            if f_new <= f + 1e-4 * step * slope or step < 1e-10:
                break
            step *= 0.5
        s, y = x_new - x, g_new - g
        if (s * y).sum() > 1e-12:
            S.append(s)
            Y.append(y)
            if len(S) > m:
                S.pop(0)
                Y.pop(0)
        rel = abs(f - f_new) / max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if log:
            log(it, f)
        if rel < tol:
            break
    return x


def fit_linear(corpus: Corpus, n_classes: int, *, l2: float, max_iter: int, log=None) -> tuple[np.ndarray, np.ndarray]:
    prob = _Problem(corpus, l2, n_classes)
    theta = lbfgs(prob, np.zeros(prob.n_feat * n_classes + n_classes), max_iter=max_iter, log=log)
    return prob.unpack(theta)


def _permuted(corpus: Corpus, perm: np.ndarray) -> Corpus:
    """The corpus with its examples in the order `perm`."""
    lengths = np.diff(corpus.indptr)[perm]
    starts = corpus.indptr[:-1][perm]
    take = np.concatenate([np.arange(s, s + k) for s, k in zip(starts, lengths)]) if len(perm) else np.zeros(0, int)
    return Corpus(np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64), corpus.indices[take], corpus.data[take],
                  corpus.rows, corpus.y[perm], corpus.sample_weight[perm])


class _Adam:
    """Adam with lazy updates: a step touches only the given rows (sparse features), with the global step count."""

    def __init__(self, shape, lr: float):
        self.m, self.v, self.lr, self.t = np.zeros(shape), np.zeros(shape), lr, 0

    def step(self, param: np.ndarray, grad: np.ndarray, rows: np.ndarray | None = None):
        b1, b2 = 0.9, 0.999
        sel = slice(None) if rows is None else rows
        m = b1 * self.m[sel] + (1 - b1) * grad
        v = b2 * self.v[sel] + (1 - b2) * grad * grad
        self.m[sel], self.v[sel] = m, v
        param[sel] -= self.lr * (m / (1 - b1 ** self.t)) / (np.sqrt(v / (1 - b2 ** self.t)) + 1e-8)


def fit_wide_deep(corpus: Corpus, hidden: int, *, epochs: int = 8, lr: float = 0.005, l2: float = 1e-6,
                  batch: int = 256, seed: int = 0, log=None):
    """Logistic harm head with a linear part and one ReLU hidden layer over the same sparse features, trained
    jointly by minibatch Adam (full-batch L-BFGS would take a dense pass over hidden x features per step).
    Deterministic: a seeded initialisation and example order, gathers and `np.bincount` sums in array order.
    Returns (w, b, E, c, v): logit = b + x.w + relu(x.E + c).v"""
    rng = np.random.default_rng(seed)
    F, H = len(corpus.rows), hidden
    c = _permuted(corpus, rng.permutation(corpus.n))
    sw = c.sample_weight * (c.n / c.sample_weight.sum())
    w, b = np.zeros(F), np.zeros(1)
    E = rng.normal(0.0, 0.1, (F, H))
    cb, v = np.full(H, 0.1), rng.normal(0.0, 0.3, H)
    opt = {"w": _Adam(F, lr), "b": _Adam(1, lr), "E": _Adam((F, H), lr), "c": _Adam(H, lr), "v": _Adam(H, lr)}
    blocks = [(lo, min(lo + batch, c.n)) for lo in range(0, c.n, batch)]
    for epoch in range(epochs):
        total = 0.0
        for k in rng.permutation(len(blocks)):
            lo, hi = blocks[k]
            s, e = c.indptr[lo], c.indptr[hi]
            ids, vals = c.indices[s:e], c.data[s:e]
            seg = np.repeat(np.arange(hi - lo), np.diff(c.indptr[lo:hi + 1]))
            uniq, inv = np.unique(ids, return_inverse=True)
            Eu = E[uniq]
            pre = np.stack([np.bincount(seg, weights=vals * Eu[inv, j], minlength=hi - lo) for j in range(H)], 1) + cb
            act = np.maximum(pre, 0.0)
            z = b[0] + np.bincount(seg, weights=vals * w[ids], minlength=hi - lo) + act @ v
            y, wt = c.y[lo:hi], sw[lo:hi]
            total += float((wt * (np.logaddexp(0.0, z) - y * z)).sum())
            dz = (1.0 / (1.0 + np.exp(-z)) - y) * wt / (hi - lo)
            dpre = dz[:, None] * v[None, :] * (pre > 0)
            g_w = np.bincount(inv, weights=vals * dz[seg], minlength=len(uniq)) + l2 * w[uniq]
            g_E = np.stack([np.bincount(inv, weights=vals * dpre[seg, j], minlength=len(uniq)) for j in range(H)], 1)
            g_E += l2 * Eu
            for o in opt.values():
                o.t += 1
            opt["w"].step(w, g_w, uniq)
            opt["E"].step(E, g_E, uniq)
            opt["b"].step(b, np.array([dz.sum()]))
            opt["c"].step(cb, dpre.sum(axis=0))
            opt["v"].step(v, act.T @ dz)
        if log:
            log(epoch, total / c.n)
    return w, float(b[0]), E, cb, v


def fit_platt(scores: np.ndarray, harmful: np.ndarray, iters: int = 100) -> tuple[float, float]:
    """Logistic fit p = sigmoid(a*s + b) by Newton's method, with Platt's smoothed targets."""
    n_pos, n_neg = harmful.sum(), (~harmful).sum()
    t = np.where(harmful, (n_pos + 1) / (n_pos + 2), 1 / (n_neg + 2))
    a, b = 1.0, 0.0
    for _ in range(iters):
        p = 1 / (1 + np.exp(-np.clip(a * scores + b, -50, 50)))
        g = np.array([((p - t) * scores).sum(), (p - t).sum()])
        w = p * (1 - p) + 1e-12
        H = np.array([[(w * scores * scores).sum(), (w * scores).sum()], [(w * scores).sum(), w.sum()]])
        H += 1e-9 * np.eye(2)
        delta = np.linalg.solve(H, g)
        a, b = a - delta[0], b - delta[1]
        if np.abs(delta).max() < 1e-10:
            break
    return float(a), float(b)


def pick_threshold(probs: np.ndarray, harmful: np.ndarray, *, max_over_refusal: float) -> float:
    """The lowest threshold (most harmful prompts caught) whose over-refusal on the non-harmful items is within
    budget; thresholds sit halfway between neighbouring scores so tiny score shifts do not flip items."""
    safe_probs = np.sort(probs[~harmful])[::-1]
    allowed = int(np.floor(max_over_refusal * len(safe_probs)))
    if len(safe_probs) == 0:
        return 0.5
    # refusing at most `allowed` safe items: threshold just above the (allowed+1)-th highest safe score
    bar = safe_probs[allowed] if allowed < len(safe_probs) else 0.0
    above = probs[probs > bar]
    nxt = above.min() if len(above) else min(1.0, bar + 1e-3)
    return float(min(0.99, max(0.05, (bar + nxt) / 2)))


@dataclass
class TrainResult:
    model: LinearGuardModel
    seconds: float
    n_examples: int
    n_harm_features: int
    n_category_features: int


def train(examples, calibration_items, *, l2_harm: float = 1e-5, l2_category: float = 1e-5, max_iter: int = 150,
          max_over_refusal: float = 0.02, output_threshold: float = 0.9, hidden: int = 0, epochs: int = 8,
          lr: float = 0.005, seed: int = 0, log=None, meta: dict | None = None) -> TrainResult:
    """Weights from `examples` (synth.Example, or (text, label) pairs with label "safe" or a category); Platt
    scaling and the input threshold from `calibration_items` (redteam.Item, which must not be among `examples`)."""
    t0 = time.perf_counter()
    texts = [e[0] if isinstance(e, tuple) else e.text for e in examples]
    labels = np.asarray([e[1] if isinstance(e, tuple) else e.label for e in examples])
    unknown = sorted(set(labels) - {SAFE, *CATEGORY_NAMES})
    if unknown:
        raise ValueError(f"unknown training label(s) {unknown}")
    feats = [example_features(t) for t in texts]
    harmful = labels != SAFE
    weights = balanced_weights(harmful, labels)
    harm = build_corpus([f[0] for f in feats], harmful.astype(np.float64), weights)
    deep = None
    if hidden:
        hw, hb0, dE, dc, dv = fit_wide_deep(harm, hidden, epochs=epochs, lr=lr, l2=l2_harm, seed=seed,
                                            log=(lambda i, f: log("harm", i, f)) if log else None)
        hw, hb, deep = hw[:, None], np.array([hb0]), (dE, dc, dv)
    else:
        hw, hb = fit_linear(harm, 1, l2=l2_harm, max_iter=max_iter,
                            log=(lambda i, f: log("harm", i, f)) if log else None)
    idx = np.flatnonzero(harmful)
    cat_y = np.asarray([CATEGORY_NAMES.index(labels[i]) for i in idx])
    cat = build_corpus([feats[i][1] for i in idx], cat_y, np.ones(len(idx)))
    cw, cb = fit_linear(cat, len(CATEGORY_NAMES), l2=l2_category, max_iter=max_iter,
                        log=(lambda i, f: log("category", i, f)) if log else None)
    raw = LinearGuardModel.from_float(harm.rows, hw[:, 0], hb[0], cat.rows, cw, cb, deep=deep)
    scores, is_harm = [], []
    for item in calibration_items:
        scores.append(raw.conversation_score(item.as_messages())[0])
        is_harm.append(item.label == "harmful")
    scores, is_harm = np.asarray(scores), np.asarray(is_harm, dtype=bool)
    platt = fit_platt(scores, is_harm) if is_harm.any() and (~is_harm).any() else (1.0, 0.0)
    probs = 1 / (1 + np.exp(-np.clip(platt[0] * scores + platt[1], -50, 50)))
    threshold = pick_threshold(probs, is_harm, max_over_refusal=max_over_refusal) if len(probs) else 0.5
    model = LinearGuardModel(raw.harm_rows, raw.harm_w, raw.harm_scale, raw.harm_bias, raw.cat_rows, raw.cat_w,
                             raw.cat_scale, raw.cat_bias, platt, threshold, output_threshold, dict(meta or {}),
                             raw.deep_w, raw.deep_scale, raw.deep_bias, raw.deep_out)
    return TrainResult(model, time.perf_counter() - t0, len(texts), len(harm.rows), len(cat.rows))
