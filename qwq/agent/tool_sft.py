"""The cold start of `qwq agent train-tool`: SFT on teacher episodes until the model copies, with a step cap.

A tool-using episode of tool_mod is almost all fixed text; what the model must learn is to copy the question's
operands into the call and the printed digit into the answer. That copying forms abruptly after a plateau (the loss
sits where the digits are predicted from their marginal distribution), and when it forms depends on the seed. So
instead of a fixed number of steps, SFT checks every `sft_check_every` steps whether the model reproduces whole
clean held-out teacher turns (every call and answer token, outside the thinking, with probability > 1/2, so
greedy decoding writes them exactly) and, once a `sft_stop_accuracy` fraction of them are, decays the learning rate over a short tail and stops.
The epoch count is then only a cap.
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any, Sequence

HALF = math.log(0.5)


def wsd_lr(step: int, base: float, warmup: int, decay_start: int, end: int, floor: float = 0.1) -> float:
    """Warmup, then constant, then a linear decay from `decay_start` to `floor * base` at `end`. Copying emerges
    abruptly after a plateau of a few hundred steps at a high rate; a cosine decay over a run this short lowered the
    rate before it did (measured: no copying after 356 steps, against ~250 at a steadier rate)."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    if step < decay_start:
        return base
    return base * (1 - (1 - floor) * min(1.0, (step - decay_start + 1) / max(1, end - decay_start)))


def answer_mask(ids: Sequence[int], mask: Sequence[int], think_open: int, think_close: int) -> list[int]:
    """`mask` without the teacher tokens inside `<think>`...`</think>`: what the call and the answer need. (A model
    whose calls and boxes are right can still paraphrase its thinking, e.g. misstate the printed digit there and box
    the right one; the reward never reads the thinking.)"""
    out, thinking = [], False
    for token, m in zip(ids, mask):
        if token == think_open:
            thinking = True
        out.append(0 if thinking or token == think_close else m)
        if token == think_close:
            thinking = False
    return out


# sequences whose first tokens agree this far share one prefix computation. Short, so the no-tool rows (they share
# only "<|im_start|>user\nWhat is (") form one group: every group's prefix is padded to the longest one in the prompt
# forward, and singleton groups made the SFT step 25% slower than the older per-group forward (measured)
GROUP_KEY_TOKENS = 4


def prefix_grouped_batch(items: Sequence, pad_id: int):
    """`items` (ids + loss mask) as a qwq.rl.shared_prefix GroupedBatch: rows are grouped by their first
    GROUP_KEY_TOKENS tokens and each group's longest common prefix becomes its one "prompt" (the system turn with
    the tool schemas and the question frame: most of every sequence at this scale), the rest of each row its
    "completion". The prefix stops before any row's first loss token (a prompt token carries no loss) and leaves
    every row at least one token, so the grouped forward scores exactly the tokens a full forward would. Rows come
    out in group order (the SFT loss and the exact-turn count are sums over rows)."""
    from qwq.rl.shared_prefix import grouped_batch

    keyed: dict[tuple, list[int]] = {}
    for row, it in enumerate(items):
        if len(it.ids) < 2 or len(it.ids) != len(it.mask):
            raise ValueError(f"item {row}: needs >= 2 tokens and a mask of its length")
        keyed.setdefault(tuple(it.ids[:GROUP_KEY_TOKENS]), []).append(row)
    prompts, group, completions, masks = [], [], [], []
    for rows in keyed.values():
        seqs = [items[r].ids for r in rows]
        limit = min(min(len(q) - 1 for q in seqs),
                    min(next((i for i, m in enumerate(items[r].mask) if m), len(items[r].ids)) for r in rows))
        prefix = 0
        while prefix < limit and all(q[prefix] == seqs[0][prefix] for q in seqs):
            prefix += 1
        prefix = max(1, prefix)  # at least the first token, which nothing predicts (a full forward drops it too)
        prompts.append(list(seqs[0][:prefix]))
        for r in rows:
            group.append(len(prompts) - 1)
            completions.append(list(items[r].ids[prefix:]))
            masks.append(list(items[r].mask[prefix:]))
    return grouped_batch(prompts, group, completions, masks, [0.0] * len(items), pad_id)


def exact_turn_rate(model, items: Sequence, pad_id: int, vocab_limit: int | None = None, batch: int = 16) -> float:
    """Fraction of `items` (teacher episodes) whose every checked token (mask 1) the model gives probability > 1/2:
    teacher-forced, so one forward per batch, and what passes is what greedy decoding would write."""
    import torch

    from qwq.rl.shared_prefix import PromptState, grouped_logprobs

    if not items:
        return 0.0
    was_training = model.training
    model.eval()
    exact = 0
    with torch.no_grad():
        for start in range(0, len(items), batch):
            grouped = prefix_grouped_batch(items[start:start + batch], pad_id)
            prompts = PromptState(model, grouped)
            for rows in grouped.micro_batches(batch):
                logp, mask, _ = grouped_logprobs(model, grouped, rows, prompts, vocab_limit=vocab_limit)
                worst = torch.where(mask > 0, logp, torch.zeros_like(logp)).min(dim=1).values
                exact += int((worst > HALF).sum())
    model.train(was_training)
    return exact / len(items)


def sft_on_episodes(model, items: Sequence, cfg: Any, pad_id: int, metrics_path: Path,
                    vocab_limit: int | None = None, check_items: Sequence = ()) -> list[dict]:
    """Token cross-entropy on the teacher's tokens (mask 1) only, qwq.rl.sft's AdamW, seeded batches, the forward
    running each batch's shared prompt prefix once and the rest packed by length (`prefix_grouped_batch` on
    qwq.rl.shared_prefix: what makes this affordable on a CPU).

    Schedule: warmup, constant, linear decay over the last fifth of the cap (`sft_epochs`); with `check_items` and
    `sft_stop_accuracy` > 0, the exact-turn rate on them is logged every `sft_check_every` steps and the first time
    it reaches `sft_stop_accuracy` the decay starts there and lasts `sft_tail` of the steps taken so far (at least
    one check interval). Records carry `heldout_exact` at the checks; the record where the rate was first reached
    carries `copied: true`."""
    import torch

    from qwq.rl.metrics import MetricsLog
    from qwq.rl.sft import make_optimizer
    from qwq.rl.shared_prefix import PromptState, grouped_logprobs

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.sft_lr, 0.0)
    per_epoch = math.ceil(len(items) / cfg.sft_batch_size)
    end = max(1, math.ceil(cfg.sft_epochs * per_epoch))
    warmup = min(50, end // 10)
    decay_start = int(end * 0.8)
    checking = bool(check_items) and cfg.sft_stop_accuracy > 0
    copied = False
    log = MetricsLog(metrics_path)
    log.restart([])
    model.train()
    started = time.perf_counter()
    order: list[int] = []
    step = 0
    while step < end:
        epoch, offset = divmod(step, per_epoch)
        if offset == 0:
            order = list(range(len(items)))
            random.Random(f"{cfg.seed}/tool-sft/{epoch}").shuffle(order)
        chosen = [items[i] for i in order[offset * cfg.sft_batch_size:(offset + 1) * cfg.sft_batch_size]]
        lr = wsd_lr(step, cfg.sft_lr, warmup, decay_start, end)
        for group in optimizer.param_groups:
            group["lr"] = lr
        grouped = prefix_grouped_batch(chosen, pad_id)
        count = grouped.mask.sum().clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        prompts = PromptState(model, grouped)  # each prefix once; the chunks' backward stops at it
        loss = 0.0
        for rows in grouped.micro_batches(len(chosen)):
            logp, mask, _ = grouped_logprobs(model, grouped, rows, prompts, vocab_limit=vocab_limit)
            part = -(logp * mask).sum() / count
            part.backward()
            loss += part.item()
        prompts.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        step += 1
        record = {"step": step, "loss": loss, "lr": lr, "grad_norm": float(grad_norm), "tokens": int(count),
                  "epoch": round(epoch + (offset + 1) / per_epoch, 4)}
        if checking and step % cfg.sft_check_every == 0:
            record["heldout_exact"] = exact_turn_rate(model, check_items, pad_id, vocab_limit)
            if not copied and record["heldout_exact"] >= cfg.sft_stop_accuracy:
                copied = record["copied"] = True
                if step < decay_start:
                    decay_start = step
                    end = min(end, step + max(cfg.sft_check_every, round(cfg.sft_tail * step)))
        record["seconds"] = time.perf_counter() - started
        log.write(record)
    model.eval()
    return log.records
