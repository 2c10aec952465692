"""Sampling parameters and the batched sampler.

Order of the filters (QwQ's model card, DESIGN §4): penalties -> top_k -> top_p -> min_p -> temperature. top_p and
min_p see the probabilities of the tokens that survived the previous filter, renormalised (as the Hugging Face
warpers chain them); the temperature only reshapes the distribution over the final survivors.

The filters run on the whole batch at once (tensor operations, no per-row Python). Every sampled row then draws one
uniform from its own `torch.Generator` and picks by inverse CDF over its survivors in token id order; every filter's
sums run along the row (cumulative sums), so a request's tokens do not depend on which other requests share the
batch. Reported logprobs are those of the raw model
distribution (log-softmax of the logits before penalties, filters and temperature, padding ids masked): that is what
an RL trainer recomputes for the same tokens.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

import torch

from qwq.utils.errors import UsageError

# Limits beyond which a value is certainly a mistake (a typo or a unit confusion), not a choice.
MAX_NEW_TOKENS_LIMIT = 1 << 20
MAX_SAMPLES_PER_REQUEST = 4096
MAX_TOP_LOGPROBS = 20
MAX_TEMPERATURE = 100.0
# Rows without top_k first look at this many best candidates; the exact full sort runs only when top_p's cut falls
# outside them (it seldom does: a 0.95 nucleus rarely needs more than a few hundred tokens).
CANDIDATES_WITHOUT_TOP_K = 1024


def _number(name: str, value, lo: float, hi: float, *, integer: bool = False, lo_open: bool = False) -> None:
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float) if not integer else int):
        raise UsageError(f"sampling parameter {name!r} must be {kind}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        raise UsageError(f"sampling parameter {name!r} must be finite, got {value!r}")
    if value < lo or value > hi or (lo_open and value == lo):
        low = f"> {lo}" if lo_open else f">= {lo}"
        raise UsageError(f"sampling parameter {name!r} must be {low} and <= {hi}, got {value!r}")


@dataclass(frozen=True)
class SamplingParams:
    """Per-request sampling settings. Defaults are QwQ's recommended ones (temperature 0.6, top_p 0.95, top_k 40).

    temperature 0 means greedy. top_k 0 means no top-k cut; top_p 1 and min_p 0 mean no cut either.
    `stop` strings end a sample when its decoded text contains one (across token boundaries); the text is cut
    before it unless `include_stop_str_in_output`. `stop_token_ids` end it like EOS does (the EOS ids of the
    tokenizer always stop unless `ignore_eos`). With `logprobs`, each sample carries the raw-model logprob of every
    sampled token and, with `top_logprobs` > 0, that many best alternatives per position.
    With `seed`, sample i of the request draws from a generator seeded by (seed, i): reproducible, batch-invariant.
    """

    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_new_tokens: int = 256
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    stop_token_ids: tuple[int, ...] = ()
    ignore_eos: bool = False
    logprobs: bool = False
    top_logprobs: int = 0
    include_stop_str_in_output: bool = False
    skip_special_tokens: bool = True
    # Free-form settings the controllers read (thinking budget, loop breaker, ...); see qwq.engine.hooks.
    controls: dict = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        _number("temperature", self.temperature, 0.0, MAX_TEMPERATURE)
        _number("top_p", self.top_p, 0.0, 1.0, lo_open=True)
        _number("top_k", self.top_k, 0, 1 << 24, integer=True)
        _number("min_p", self.min_p, 0.0, 1.0)
        _number("presence_penalty", self.presence_penalty, -2.0, 2.0)
        _number("frequency_penalty", self.frequency_penalty, -2.0, 2.0)
        _number("max_new_tokens", self.max_new_tokens, 1, MAX_NEW_TOKENS_LIMIT, integer=True)
        _number("n", self.n, 1, MAX_SAMPLES_PER_REQUEST, integer=True)
        _number("top_logprobs", self.top_logprobs, 0, MAX_TOP_LOGPROBS, integer=True)
        if self.seed is not None:
            _number("seed", self.seed, 0, (1 << 63) - 1, integer=True)
        stop = (self.stop,) if isinstance(self.stop, str) else self.stop
        if not isinstance(stop, (list, tuple)) or not all(isinstance(s, str) and s for s in stop):
            raise UsageError(f"sampling parameter 'stop' must be a list of non-empty strings, got {self.stop!r}")
        object.__setattr__(self, "stop", tuple(stop))
        ids = self.stop_token_ids
        if not isinstance(ids, (list, tuple)) or not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0
                                                         for i in ids):
            raise UsageError(f"sampling parameter 'stop_token_ids' must be a list of token ids >= 0, got {ids!r}")
        object.__setattr__(self, "stop_token_ids", tuple(ids))
        if not isinstance(self.controls, dict):
            raise UsageError(f"sampling parameter 'controls' must be a dict, got {type(self.controls).__name__}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0.0

    @property
    def wants_penalties(self) -> bool:
        return self.presence_penalty != 0.0 or self.frequency_penalty != 0.0

    def sample_seed(self, index: int) -> int | None:
        """The seed of sample `index` (None: fresh entropy). Mixed so that (seed, i) and (seed + i, 0) differ."""
        if self.seed is None:
            return None
        return (self.seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 1) % (1 << 63)

    def replace(self, **changes) -> "SamplingParams":
        import dataclasses

        return dataclasses.replace(self, **changes)


def make_generator(seed: int | None, device: torch.device | str = "cpu") -> tuple[torch.Generator, int]:
    """A generator for one sample stream and the seed it got (drawn from OS entropy when none is given)."""
    if seed is None:
        seed = random.SystemRandom().randrange(1 << 63)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen, seed


@dataclass
class RowSampling:
    """What the sampler needs to know about one row of the batch."""

    params: SamplingParams
    generator: torch.Generator | None
    generated: Sequence[int] = ()  # tokens generated so far (for presence / frequency penalties)
    bias: torch.Tensor | None = None  # [V] added to the logits after the penalties (-inf masks a token)
    counts: torch.Tensor | None = None  # [>= V] occurrences of each id in `generated`, kept up to date by the caller


@dataclass
class SampleBatchOutput:
    token_ids: list[int]
    logprobs: list[float] | None  # raw-model logprob of each sampled token (None when no row asked)
    top_logprobs: list[list[tuple[int, float]]] | None


def apply_penalties(logits: torch.Tensor, rows: Sequence[RowSampling]) -> None:
    """In place: logit -= frequency_penalty * count + presence_penalty * [count > 0], over generated tokens only
    (OpenAI / vLLM semantics; the prompt is not penalised)."""
    vocab = logits.shape[-1]
    for i, row in enumerate(rows):
        p = row.params
        if not p.wants_penalties or not row.generated:
            continue
        if row.counts is not None:  # maintained incrementally: O(V) per step, not O(generated)
            counts = row.counts[:vocab].to(logits.device, logits.dtype)
        else:
            ids = torch.as_tensor(list(row.generated), dtype=torch.long, device=logits.device)
            counts = torch.bincount(ids[ids < vocab], minlength=vocab).to(logits.dtype)
        logits[i] -= p.frequency_penalty * counts + p.presence_penalty * (counts > 0).to(logits.dtype)


def _row_settings(rows: Sequence[RowSampling], device: torch.device) -> tuple[torch.Tensor, ...]:
    """(temperature, top_k (0: off), top_p, min_p) of every row, each as an [R, 1] tensor."""
    def column(values: list, dtype: torch.dtype) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=device)[:, None]

    params = [r.params for r in rows]
    return (column([p.temperature for p in params], torch.float32), column([p.top_k for p in params], torch.long),
            column([p.top_p for p in params], torch.float32), column([p.min_p for p in params], torch.float32))


def _survivors(vals: torch.Tensor, log_norm: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor,
               min_p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Which sorted candidates survive top_k -> top_p -> min_p (mask [R, W]), and which rows without top_k cannot
    be decided from their W best candidates because the cut may fall beyond them ([R]).

    vals: each row's best logits, sorted descending; log_norm: each row's log-partition over its whole vocabulary.
    Sums run as cumulative sums along the row, so a row's result does not depend on W (the batch's widest top_k).
    """
    width = vals.shape[1]
    has_k = top_k > 0
    column = torch.arange(width, device=vals.device)[None]
    in_k = ~has_k | (column < top_k)
    # top_k rows renormalise over their k survivors; the others keep the full-vocabulary probabilities
    unnormalised = torch.exp(vals - vals[:, :1])
    top_k_mass = unnormalised.cumsum(-1).gather(1, (top_k.clamp(1, width) - 1))
    probs = torch.where(has_k, (unnormalised / top_k_mass).masked_fill(~in_k, 0.0),
                        torch.exp(vals - log_norm[:, None]))
    cumulative = torch.cumsum(probs, dim=-1)
    cuts_p = top_p < 1.0
    undecided = torch.where(cuts_p, cumulative[:, -1:] < top_p, (min_p > 0.0) & (probs[:, -1:] >= min_p * probs[:, :1]))
    undecided = (undecided & ~has_k).squeeze(1)
    in_p = ~cuts_p | (cumulative - probs < top_p)  # the smallest prefix whose mass reaches top_p
    in_min = probs >= min_p * probs[:, :1]  # min_p 0 keeps everything (probabilities are >= 0)
    keep = in_k & in_p & in_min
    keep[:, 0] = True  # the best token always survives
    return keep, undecided


def _draw(weights: torch.Tensor, rows: Sequence[RowSampling]) -> torch.Tensor:
    """One column per row of `weights` [R, W] (unnormalised, >= 0, at least one positive per row), by inverse CDF
    with a uniform from the row's own generator. Columns must be in an order that depends on the row alone (token
    id order), so the pick does not depend on what else is in the batch."""
    uniforms = torch.cat([torch.rand(1, generator=r.generator, dtype=torch.float64, device=r.generator.device)
                          for r in rows])
    cdf = torch.cumsum(weights.double(), dim=-1)
    target = (uniforms.to(cdf.device) * cdf[:, -1])[:, None]
    picks = torch.searchsorted(cdf, target, right=True).squeeze(1)  # first column whose cdf exceeds the target
    # rounding can put the target at the very top: fall back to the last column with any weight
    last = weights.shape[1] - 1 - (weights > 0).flip(-1).int().argmax(-1)
    return torch.minimum(picks, last)


def _sample_uncut(logits: torch.Tensor, temperature: torch.Tensor, rows: Sequence[RowSampling]) -> torch.Tensor:
    """Rows that sample from the whole (tempered) vocabulary."""
    best = logits.max(dim=-1, keepdim=True).values
    return _draw(torch.exp((logits - best) / temperature), rows)


def _sample_cut(logits: torch.Tensor, settings: tuple[torch.Tensor, ...], rows: Sequence[RowSampling],
                exact: bool = False) -> torch.Tensor:
    """Rows with a top_k, top_p or min_p cut: their survivors, drawn from in token id order."""
    temperature, top_k, top_p, min_p = settings
    vocab = logits.shape[-1]
    log_norm = torch.logsumexp(logits, dim=-1)
    if exact:
        vals, ids = torch.sort(logits, dim=-1, descending=True)
    else:
        width = min(vocab, max(r.params.top_k if r.params.top_k > 0 else CANDIDATES_WITHOUT_TOP_K for r in rows))
        vals, ids = logits.topk(width, dim=-1, sorted=True)
    keep, undecided = _survivors(vals, log_norm, top_k, top_p, min_p)
    if not exact and vals.shape[1] < vocab and bool(undecided.any()):
        picks = torch.empty(len(rows), dtype=torch.long, device=logits.device)
        redo = undecided.nonzero().squeeze(1).tolist()  # these rows need every token: sort them whole
        done = [i for i in range(len(rows)) if i not in set(redo)]
        picks[redo] = _sample_cut(logits[redo], tuple(t[redo] for t in settings), [rows[i] for i in redo], True)
        if done:
            picks[done] = _sample_cut(logits[done], tuple(t[done] for t in settings), [rows[i] for i in done])
        return picks
    weights = torch.exp((vals - vals[:, :1]) / temperature).masked_fill(~keep, 0.0)
    order = ids.masked_fill(~keep, vocab).argsort(dim=-1)  # survivors in token id order, the others after them
    ids, weights = ids.gather(1, order), weights.gather(1, order)
    return ids.gather(1, _draw(weights, rows)[:, None]).squeeze(1)


def _sample_random(logits: torch.Tensor, rows: Sequence[RowSampling], index_of: Sequence[int]) -> list[int]:
    """Sampled token ids for rows with temperature > 0 (`logits` [R, V], penalties and biases applied). Each row
    takes the path its own parameters decide, so its token does not depend on the other rows."""
    best = logits.max(dim=-1).values
    masked = ~torch.isfinite(best)
    if bool(masked.any()):
        row = index_of[int(masked.nonzero()[0])]
        raise ValueError(f"sample_batch: every token of row {row} is masked (-inf)")
    settings = _row_settings(rows, logits.device)
    temperature, top_k, top_p, min_p = settings
    uncut = ((top_k == 0) & (top_p >= 1.0) & (min_p == 0.0)).squeeze(1).tolist()
    if all(uncut):
        return _sample_uncut(logits, temperature, rows).tolist()
    if not any(uncut):
        return _sample_cut(logits, settings, rows).tolist()
    picks = [0] * len(rows)
    for wanted in (True, False):
        members = [i for i, u in enumerate(uncut) if u == wanted]
        sub, sub_rows = logits[members], [rows[i] for i in members]
        got = (_sample_uncut(sub, temperature[members], sub_rows) if wanted
               else _sample_cut(sub, tuple(t[members] for t in settings), sub_rows))
        for i, token in zip(members, got.tolist()):
            picks[i] = token
    return picks


def sample_batch(logits: torch.Tensor, rows: Sequence[RowSampling], vocab_limit: int | None = None
                 ) -> SampleBatchOutput:
    """Pick one token per row of `logits` [B, V] (any float dtype; computed in fp32).

    `vocab_limit`: ids >= it are embedding padding rows (no token) and are never picked. Raises ValueError (before
    any generator is drawn from) when a sampled row has every token masked.
    """
    if logits.dim() != 2 or logits.shape[0] != len(rows):
        raise ValueError(f"sample_batch: logits {tuple(logits.shape)} for {len(rows)} rows")
    logits = logits.float()
    if vocab_limit is not None and vocab_limit < logits.shape[-1]:
        logits = logits[:, :vocab_limit]
    vocab = logits.shape[-1]
    want_logprobs = any(r.params.logprobs or r.params.top_logprobs for r in rows)
    raw_log_norm = torch.logsumexp(logits, dim=-1) if want_logprobs else None
    raw = logits
    if any((r.params.wants_penalties and r.generated) or r.bias is not None for r in rows):
        logits = logits.clone()
        apply_penalties(logits, rows)
        for i, row in enumerate(rows):
            if row.bias is not None:
                logits[i] += row.bias[:vocab].to(logits.device, logits.dtype)

    chosen = [0] * len(rows)
    greedy_rows = [i for i, r in enumerate(rows) if r.params.greedy]
    random_rows = [i for i, r in enumerate(rows) if not r.params.greedy]
    if random_rows:
        sub = logits if len(random_rows) == len(rows) else logits[random_rows]
        picks = _sample_random(sub, [rows[i] for i in random_rows], random_rows)
        for i, tok in zip(random_rows, picks):
            chosen[i] = tok
    if greedy_rows:
        sub = logits if len(greedy_rows) == len(rows) else logits[greedy_rows]
        for i, tok in zip(greedy_rows, sub.argmax(dim=-1).tolist()):
            chosen[i] = tok

    logprobs = top = None
    if want_logprobs:
        chosen_t = torch.tensor(chosen, device=raw.device)
        picked = raw.gather(1, chosen_t[:, None]).squeeze(1) - raw_log_norm
        logprobs = picked.tolist()
        widest = max(r.params.top_logprobs for r in rows)
        if widest:
            vals, ids = raw.topk(widest, dim=-1)
            vals = (vals - raw_log_norm[:, None]).tolist()
            ids = ids.tolist()
            top = [list(zip(ids[i][: r.params.top_logprobs], vals[i][: r.params.top_logprobs]))
                   for i, r in enumerate(rows)]
    return SampleBatchOutput(chosen, logprobs, top)
