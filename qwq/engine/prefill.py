"""How the scheduler groups the prompts it admits in one step into as few prefill forwards as it can.

Why pack: on CPU the weight-only int4 kernel costs about the same per input row however many rows it gets, while
from DENSE_FROM_ROWS rows on the quantized layers dequantize once per call and run one dense matmul, which
amortises over the rows; attention is a small part of a prefill. So eight 64-token prompts in one 512-token
forward take about 1.5x less time than eight forwards (measured on the 0.5B model, one thread), and the prompts
admitted together get their first tokens that much sooner. Attention stays within each prompt (see
PagedKVCache.begin_packed), so a packed prompt gets the same logits as one prefilled alone, up to float rounding.

Waves: with prefix caching, a prompt whose first block equals that of an earlier prompt of the same step waits for
that one's forward (a second wave in the same step), so it reads the shared blocks from the cache instead of
computing them again; such prompts (many requests under one system prompt, say) are packed with each other.
"""

from __future__ import annotations

from typing import Sequence

from qwq.engine.sequence import RequestState

DEFAULT_PREFILL_BUDGET = 2048  # prompt tokens admitted per step (at least one request): decode keeps going


def split_waves(requests: Sequence[RequestState], block_size: int, prefix_caching: bool) -> list[list[RequestState]]:
    """Requests in arrival order as at most two waves: the first prompt of each distinct first cache block, then
    the prompts that repeat a first block (all of which find that block cached once the first wave ran)."""
    if not prefix_caching:
        return [list(requests)] if requests else []
    first, repeats, seen = [], [], set()
    for request in requests:
        prompt = request.prompt_ids
        key = tuple(prompt[:block_size]) if len(prompt) > block_size else None  # add_sequence reuses full blocks
        if key is not None and key in seen:
            repeats.append(request)
        else:
            first.append(request)
            seen.add(key)
    return [wave for wave in (first, repeats) if wave]


def plan_packs(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of `lengths` grouped into forwards of at most `capacity` tokens, filled in order; a length over the
    capacity goes alone (its prompt is prefilled in chunks)."""
    packs: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, length in enumerate(lengths):
        if length > capacity:
            packs.append([index])
            continue
        if current and total + length > capacity:
            packs.append(current)
            current, total = [], 0
        current.append(index)
        total += length
    if current:
        packs.append(current)
    return packs
