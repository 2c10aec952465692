"""Supervised fine-tuning (the cold start): next-token loss on the assistant's tokens only.

A training example is a prompt (the chat template's rendering of the conversation up to and including the
assistant generation prompt, `<|im_start|>assistant\\n<think>\\n` for QwQ) and a completion (thinking, `</think>`,
answer, `<|im_end|>`). Prompt and completion are tokenized separately and concatenated, so the model is trained on
exactly the token boundary it sees when it generates after that prompt. Prompt tokens and padding carry no loss.

Data order is a seeded permutation per epoch and the data cursor is part of the checkpoint, so a resumed run sees
the same batches as an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from qwq.rl.checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from qwq.rl.config import RunConfig, SFTConfig
from qwq.rl.data import DatasetError, Example, build_task
from qwq.rl.losses import masked_cross_entropy
from qwq.rl.metrics import MetricsLog, autocast_context
from qwq.rl.modeling import pad_batch


@dataclass(frozen=True)
class SFTItem:
    ids: list[int]
    mask: list[int]  # 1 on completion tokens (the loss), 0 on the prompt


def teacher_pairs(cfg: SFTConfig, seed: int) -> list[tuple[list[dict], str, Example]]:
    """(messages, teacher completion, example) for the configured tasks: train split only, seeded teacher."""
    pairs = []
    for name, count in cfg.tasks.items():
        task = build_task(name, cfg.task_options.get(name))
        rng = random.Random(f"{seed}/sft-teacher/{name}")
        rate = cfg.slip_rate.get(name, SFTConfig.slip_rate) if isinstance(cfg.slip_rate, dict) else cfg.slip_rate
        for example in task.examples("train", int(count), seed, unique=False):  # repeats get fresh traces
            pairs.append((task.messages(example), task.teacher(example, rng, float(rate)), example))
    random.Random(f"{seed}/sft-mix").shuffle(pairs)
    return pairs


def prompt_text(template, messages: Sequence[dict]) -> str:
    return template.render(list(messages), add_generation_prompt=True)


def encode_pair(tokenizer, template, messages: Sequence[dict], completion: str, max_length: int) -> SFTItem | None:
    """Prompt ids + completion ids (+ eos); None when it does not fit `max_length`."""
    prompt = tokenizer.encode(prompt_text(template, messages))
    answer = tokenizer.encode(completion) + [tokenizer.eos_token_id]
    if len(prompt) + len(answer) > max_length:
        return None
    return SFTItem(prompt + answer, [0] * len(prompt) + [1] * len(answer))


def read_sft_jsonl(path: str | Path) -> list[tuple[list[dict], str]]:
    """{"messages": [..., {"role": "assistant", "content": C}]} or {"prompt": P, "completion": C} rows."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: SFT data file not found")
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{path}:{number}: invalid JSON ({exc.msg})") from None
        if "messages" in row:
            messages = row["messages"]
            if not messages or messages[-1].get("role") != "assistant":
                raise DatasetError(f"{path}:{number}: the last message must be the assistant's (the target)")
            completion = str(messages[-1].get("content", ""))
            if completion.startswith("<think>"):  # the generation prompt already opened the thinking
                completion = completion[len("<think>"):].lstrip("\n")
            rows.append((messages[:-1], completion))
        elif "prompt" in row and "completion" in row:
            rows.append(([{"role": "user", "content": str(row["prompt"])}], str(row["completion"])))
        else:
            raise DatasetError(f"{path}:{number}: expected 'messages' or 'prompt' + 'completion'")
    if not rows:
        raise DatasetError(f"{path}: no rows")
    return rows


def build_sft_items(cfg: SFTConfig, tokenizer, template, seed: int, pairs=None) -> list[SFTItem]:
    """Tokenized SFT examples: from `sft.data` (JSONL), else from the teacher (`pairs` if already drawn)."""
    if cfg.data:
        conversations = read_sft_jsonl(cfg.data)
    else:
        pairs = pairs if pairs is not None else teacher_pairs(cfg, seed)
        conversations = [(messages, completion) for messages, completion, _ in pairs]
    items = [encode_pair(tokenizer, template, m, c, cfg.max_length) for m, c in conversations]
    kept = [item for item in items if item is not None]
    if not kept:
        raise DatasetError(f"no SFT example fits sft.max_length={cfg.max_length} tokens")
    return kept


def lr_at(step: int, total: int, base: float, warmup: int, min_ratio: float) -> float:
    """Linear warmup, then cosine decay to `min_ratio * base`."""
    if warmup and step < warmup:
        return base * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def epoch_batches(size: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """The batches of one epoch: a seeded permutation cut into consecutive batches. (Length-sorted buckets pad less
    but make each batch one kind of task; measured here, that cost far more learning than the padding it saved.)"""
    order = list(range(size))
    random.Random(f"{seed}/sft-epoch/{epoch}").shuffle(order)
    return [order[i:i + batch_size] for i in range(0, size, batch_size)]


def batch_at(index: int, size: int, batch_size: int, seed: int) -> tuple[list[int], float]:
    """Batch number `index` of the stream (epochs one after another) and the epoch position it ends at."""
    per_epoch = math.ceil(size / batch_size)
    epoch, offset = divmod(index, per_epoch)
    return epoch_batches(size, batch_size, seed, epoch)[offset], epoch + (offset + 1) / per_epoch


def trainable_parameters(model) -> list[torch.nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def make_optimizer(params, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    return torch.optim.AdamW(params, lr=lr, betas=(0.9, 0.95), eps=1e-8, weight_decay=weight_decay, foreach=False)


def train_sft(model, model_config, items: Sequence[SFTItem], cfg: SFTConfig, run: RunConfig, stage_dir: Path,
              pad_id: int, resume: bool = False, progress=None, trainable_only: bool = False, dp=None) -> list[dict]:
    """Train in place; checkpoints and metrics.jsonl under `stage_dir`. Returns the step records.

    With a DataParallel `dp` of N ranks every rank takes rows rank, rank + N, ... of each batch and the token-count
    normaliser and gradients are summed across ranks: the same update as one process on the whole batch. Only rank
    0 writes checkpoints and metrics."""
    from qwq.rl.distributed import DataParallel

    dp = dp or DataParallel()
    stage_dir = Path(stage_dir)
    params = trainable_parameters(model)
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    total = max(1, math.ceil(cfg.epochs * len(items) / cfg.batch_size))
    log = MetricsLog(stage_dir / ("metrics.jsonl" if dp.rank == 0 else f"metrics.rank{dp.rank}.jsonl"))
    state = TrainerState(0, 0, [], {})
    if resume and (found := latest_checkpoint(stage_dir)) is not None:
        state = load_checkpoint(found, model, optimizer)
    log.restart(state.metrics or [])
    task = progress.add_task("cold-start SFT", total=total, completed=state.step) if progress else None
    model.train()
    started, cpu_started = time.perf_counter(), time.process_time()
    while state.step < total:
        lr = lr_at(state.step, total, cfg.lr, cfg.warmup_steps, cfg.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        indices, epoch = batch_at(state.cursor, len(items), cfg.batch_size, run.seed)
        batch = dp.shard([items[i] for i in indices])
        ids, mask = pad_batch([b.ids for b in batch], [b.mask for b in batch], pad_id)
        with autocast_context(run.autocast):
            logits = model(ids[:, :-1])
        loss_sum, count = masked_cross_entropy(logits, ids[:, 1:], mask[:, 1:])
        count = dp.all_reduce_sum(count.detach())
        loss = loss_sum / count.clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        dp.sum_gradients(params)
        loss = dp.all_reduce_sum(loss.detach())
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip) if cfg.grad_clip else torch.tensor(0.0)
        optimizer.step()
        state.step += 1
        state.cursor += 1  # batches consumed
        record = {"step": state.step, "loss": loss.item(), "lr": lr, "grad_norm": float(grad_norm),
                  "tokens": int(count), "epoch": round(epoch, 4),
                  "seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu_started}
        log.write(record)
        state.metrics = log.records
        if progress:
            progress.update(task, advance=1, description=f"cold-start SFT  loss {record['loss']:.3f}")
        if dp.rank == 0 and run.checkpoint_every and state.step % run.checkpoint_every == 0 and state.step < total:
            save_checkpoint(stage_dir, model, model_config, optimizer, state, run.keep_checkpoints, trainable_only)
    if dp.rank == 0:
        save_checkpoint(stage_dir, model, model_config, optimizer, state, run.keep_checkpoints, trainable_only)
    model.eval()
    return log.records


def describe_items(items: Sequence[SFTItem]) -> dict[str, Any]:
    lengths = [len(i.ids) for i in items]
    return {"examples": len(items), "tokens": sum(lengths), "mean_length": sum(lengths) / max(1, len(lengths)),
            "max_length": max(lengths, default=0)}
