"""Sampling parameters and the batched sampler.

Order of the filters (QwQ's model card, DESIGN §4): penalties -> top_k -> top_p -> min_p -> temperature. top_p and
min_p see the probabilities of the tokens that survived the previous filter, renormalised (as the Hugging Face
warpers chain them); the temperature only reshapes the distribution over the final survivors.

Every sampled row draws from its own `torch.Generator`, and every filter works on that row alone, so a request's
tokens do not depend on which other requests share the batch. Reported logprobs are those of the raw model
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


def _filtered_candidates(logits: torch.Tensor, log_norm: torch.Tensor, params: SamplingParams,
                         cand_logits: torch.Tensor, cand_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The sorted survivors (logits, ids) of top_k -> top_p -> min_p for one row.

    cand_logits/cand_ids: this row's best candidates, sorted descending (at least top_k of them when top_k > 0).
    log_norm: the log-partition over the full (penalised) row, used when top_k is off.
    """
    if params.top_k > 0:
        k = min(params.top_k, cand_logits.shape[0])
        vals, ids = cand_logits[:k], cand_ids[:k]
        probs = torch.softmax(vals, dim=-1)  # renormalised over the top-k survivors
    elif params.top_p >= 1.0 and params.min_p == 0.0:
        return logits, torch.arange(logits.shape[0], device=logits.device)  # no cut at all
    else:
        vals, ids = cand_logits, cand_ids
        probs = torch.exp(vals - log_norm)
        if params.top_p < 1.0:
            covered = float(probs.sum()) >= params.top_p
        else:
            covered = float(probs[-1]) < params.min_p * float(probs[0])
        if not covered and vals.shape[0] < logits.shape[0]:
            vals, ids = torch.sort(logits, descending=True)
            probs = torch.exp(vals - log_norm)
    if params.top_p < 1.0:
        cumulative = torch.cumsum(probs, dim=-1)
        keep = int((cumulative - probs < params.top_p).sum())  # smallest prefix whose mass reaches top_p
        keep = max(keep, 1)
        vals, ids, probs = vals[:keep], ids[:keep], probs[:keep]
    if params.min_p > 0.0:
        keep = int((probs >= params.min_p * probs[0]).sum())  # sorted: the survivors are a prefix
        vals, ids = vals[: max(keep, 1)], ids[: max(keep, 1)]
    return vals, ids


def sample_batch(logits: torch.Tensor, rows: Sequence[RowSampling], vocab_limit: int | None = None
                 ) -> SampleBatchOutput:
    """Pick one token per row of `logits` [B, V] (any float dtype; computed in fp32).

    `vocab_limit`: ids >= it are embedding padding rows (no token) and are never picked.
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
    if greedy_rows:
        picks = logits[greedy_rows].argmax(dim=-1).tolist()
        for i, tok in zip(greedy_rows, picks):
            chosen[i] = tok
    random_rows = [i for i, r in enumerate(rows) if not r.params.greedy]
    if random_rows:
        sub = logits[random_rows]
        width = max(r.params.top_k if r.params.top_k > 0 else CANDIDATES_WITHOUT_TOP_K
                    for r in (rows[i] for i in random_rows))
        width = min(width, vocab)
        cand_logits, cand_ids = sub.topk(width, dim=-1, sorted=True)
        log_norm = torch.logsumexp(sub, dim=-1)
        for j, i in enumerate(random_rows):
            params = rows[i].params
            vals, ids = _filtered_candidates(sub[j], log_norm[j], params, cand_logits[j], cand_ids[j])
            if not torch.isfinite(vals.max()):
                raise ValueError(f"sample_batch: every token of row {i} is masked (-inf)")
            probs = torch.softmax(vals / params.temperature, dim=-1)
            pick = torch.multinomial(probs, 1, generator=rows[i].generator)
            chosen[i] = int(ids[pick])

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
