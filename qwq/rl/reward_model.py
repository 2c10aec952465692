"""A trained reward model: the Qwen2 backbone with a scalar value head on the last token, fit with the
Bradley-Terry loss on (chosen, rejected) pairs; scores batches of (prompt, completion) for stage-2 RL.

Saved in Hugging Face's `Qwen2ForSequenceClassification` layout (backbone tensors `model.*`, head `score.weight`
[1, hidden], config with `num_labels: 1`), so transformers can load it too. Pairs come from the tasks: for a
training problem the synthetic teacher writes a careful answer (chosen) and one with its characteristic slip
(rejected), and the task's own verifier must confirm the labels (pairs it cannot confirm are dropped).

`register_reward("reward_model")`: once a scorer is active (`activate(scorer)` or `load_reward_model(dir)`), the
reward registry serves `sigmoid(score)` in [0, 1] for every completion of a batch.
"""

from __future__ import annotations

import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from qwq.config import ModelConfig
from qwq.rl.data import build_task
from qwq.rl.losses import bradley_terry_loss
from qwq.rl.metrics import MetricsLog
from qwq.utils.errors import CheckpointError
from qwq.verify.registry import RewardError, completion_texts, field_values, register_reward

HEAD_NAME = "score.weight"


class RewardModel(nn.Module):
    def __init__(self, config: ModelConfig, backbone: nn.Module | None = None) -> None:
        super().__init__()
        from qwq.model.qwen2 import Qwen2Model

        self.config = config
        self.model = backbone if backbone is not None else Qwen2Model(config)
        self.score = nn.Linear(config.hidden_size, 1, bias=False)
        nn.init.zeros_(self.score.weight)  # every sequence starts at score 0: the BT loss starts at log 2

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids [B, T] right-padded, lengths [B] -> one score per sequence, read at its last real token."""
        hidden = self.model(ids)
        last = hidden[torch.arange(ids.shape[0]), lengths - 1]
        return self.score(last).squeeze(-1).float()


@dataclass(frozen=True)
class Pair:
    messages: list
    chosen: str
    rejected: str
    task: str


def task_pairs(task_counts: dict, task_options: dict, split: str, seed: int, limit_factor: int = 3) -> list[Pair]:
    """Teacher pairs (careful vs slipped answer) whose labels the task's verifier confirms."""
    pairs: list[Pair] = []
    for name, count in task_counts.items():
        task = build_task(name, task_options.get(name))
        rng = random.Random(f"{seed}/rm-pairs/{name}/{split}")
        candidates = []
        # unique=False: a small problem space (instruct has ~700 train problems) repeats its problems, each time
        # with fresh teacher wording, instead of failing the run after the cold start
        for example in task.examples(split, int(count) * limit_factor, seed, unique=False):
            chosen, rejected = task.teacher(example, rng, 0.0), task.teacher(example, rng, 1.0)
            if chosen != rejected:
                candidates.append((example, chosen, rejected))
            if len(candidates) >= int(count):
                break
        if not candidates:
            continue
        examples = [ex for ex, _, _ in candidates for _ in (0, 1)]
        texts = [t for _, c, r in candidates for t in (c, r)]
        verdicts = task.reward(texts, examples)
        for k, (example, chosen, rejected) in enumerate(candidates):
            if verdicts[2 * k] == 1.0 and verdicts[2 * k + 1] == 0.0:
                pairs.append(Pair(task.messages(example), chosen, rejected, name))
    random.Random(f"{seed}/rm-mix/{split}").shuffle(pairs)
    return pairs


def encode(tokenizer, template, messages: Sequence[dict], completion: str, max_length: int) -> list[int]:
    prompt = tokenizer.encode(template.render(list(messages), add_generation_prompt=True))
    ids = prompt + tokenizer.encode(completion) + [tokenizer.eos_token_id]
    return ids[-max_length:]  # keep the end: the score is read at the last token


def _padded(rows: Sequence[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
    return ids, torch.tensor([len(r) for r in rows])


class RewardModelScorer:
    """Batched scoring of (prompt messages, completion) with a RewardModel."""

    def __init__(self, model: RewardModel, tokenizer, template, max_length: int = 512, batch_size: int = 64):
        self.model, self.tokenizer, self.template = model.eval(), tokenizer, template
        self.max_length, self.batch_size = max_length, batch_size
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    @torch.no_grad()
    def scores(self, messages: Sequence[Sequence[dict]], completions: Sequence[str]) -> list[float]:
        rows = [encode(self.tokenizer, self.template, m, c, self.max_length) for m, c in zip(messages, completions)]
        out: list[float] = []
        for start in range(0, len(rows), self.batch_size):
            ids, lengths = _padded(rows[start:start + self.batch_size], self.pad_id)
            out.extend(self.model(ids, lengths).tolist())
        return out

    def pair_accuracy(self, pairs: Sequence[Pair]) -> float:
        if not pairs:
            return math.nan
        chosen = self.scores([p.messages for p in pairs], [p.chosen for p in pairs])
        rejected = self.scores([p.messages for p in pairs], [p.rejected for p in pairs])
        return sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected)) / len(pairs)


_ACTIVE: RewardModelScorer | None = None


def activate(scorer: RewardModelScorer | None) -> None:
    """Make `scorer` the model behind the registry's `reward_model` reward (None: deactivate)."""
    global _ACTIVE
    _ACTIVE = scorer


@register_reward("reward_model")
def reward_model_reward(completions, **fields) -> list[float]:
    """sigmoid(RM score) in [0, 1]; needs the `prompt` field (the user message) and an active reward model."""
    if _ACTIVE is None:
        raise RewardError("reward 'reward_model': no reward model is loaded (train one with `qwq train rm` and "
                          "load it, or run the pipeline, which activates the one it trains)")
    texts = completion_texts(completions)
    prompts = field_values(fields, "prompt", len(texts))
    messages = [[{"role": "user", "content": str(p)}] for p in prompts]
    return [1.0 / (1.0 + math.exp(-s)) for s in _ACTIVE.scores(messages, texts)]


def train_reward_model(rm: RewardModel, tokenizer, template, pairs: Sequence[Pair], heldout: Sequence[Pair], cfg,
                       seed: int, out_dir: Path, progress=None) -> dict:
    """Bradley-Terry training in place; metrics.jsonl under out_dir; returns held-out pair accuracy and timings."""
    from qwq.rl.sft import make_optimizer

    started = time.perf_counter()
    scorer = RewardModelScorer(rm, tokenizer, template, cfg.max_length)
    before = scorer.pair_accuracy(heldout)
    params = [p for p in rm.parameters() if p.requires_grad]
    optimizer = make_optimizer(params, cfg.lr, cfg.weight_decay)
    steps = max(1, math.ceil(cfg.epochs * len(pairs) / cfg.batch_size))
    rows = [(encode(tokenizer, template, p.messages, p.chosen, cfg.max_length),
             encode(tokenizer, template, p.messages, p.rejected, cfg.max_length)) for p in pairs]
    log = MetricsLog(Path(out_dir) / "metrics.jsonl")
    log.restart([])
    task = progress.add_task("reward model", total=steps) if progress else None
    order: list[int] = []
    epoch = 0
    rm.train()
    for step in range(steps):
        while len(order) < cfg.batch_size:
            block = list(range(len(rows)))
            random.Random(f"{seed}/rm-epoch/{epoch}").shuffle(block)
            order += block
            epoch += 1
        picked, order = order[:cfg.batch_size], order[cfg.batch_size:]
        ids, lengths = _padded([rows[i][0] for i in picked] + [rows[i][1] for i in picked], scorer.pad_id)
        scores = rm(ids, lengths)
        chosen, rejected = scores[:len(picked)], scores[len(picked):]
        loss = bradley_terry_loss(chosen, rejected)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        accuracy = float((chosen > rejected).float().mean())
        log.write({"step": step + 1, "loss": loss.item(), "pair_accuracy": accuracy,
                   "margin": (chosen - rejected).mean().item(), "seconds": time.perf_counter() - started})
        if progress:
            progress.update(task, advance=1, description=f"reward model  loss {float(loss):.3f}")
    rm.eval()
    after = scorer.pair_accuracy(heldout)
    return {"heldout_pair_accuracy_before": before, "heldout_pair_accuracy": after, "pairs": len(pairs),
            "heldout_pairs": len(heldout), "steps": steps, "seconds": time.perf_counter() - started}


def save_reward_model(rm: RewardModel, tokenizer, directory: str | Path) -> Path:
    from safetensors.torch import save_file

    from qwq.utils.atomic import atomic_directory

    directory = Path(directory)
    config = rm.config.to_hf_dict()
    config.update({"architectures": ["Qwen2ForSequenceClassification"], "num_labels": 1,
                   "id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}})
    if config.get("pad_token_id") is None and tokenizer.pad_token_id is not None:
        config["pad_token_id"] = tokenizer.pad_token_id
    state = {f"model.{k}": v.detach().contiguous() for k, v in rm.model.state_dict().items()}
    state[HEAD_NAME] = rm.score.weight.detach().contiguous()
    with atomic_directory(directory) as tmp:
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        tokenizer.save(tmp)
    return directory


def load_reward_model(directory: str | Path) -> tuple[RewardModel, object]:
    """(RewardModel, tokenizer) from a directory written by save_reward_model."""
    from safetensors.torch import load_file

    from qwq.tokenizer import Tokenizer

    directory = Path(directory)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"{directory}: no model.safetensors (not a reward model directory)")
    config = ModelConfig.from_hf(directory)
    rm = RewardModel(config)
    state = load_file(str(weights))
    if HEAD_NAME not in state:
        raise CheckpointError(f"{weights}: tensor {HEAD_NAME!r} missing (not a sequence-scoring checkpoint)")
    backbone = {k[len("model."):]: v for k, v in state.items() if k.startswith("model.")}
    missing, unexpected = rm.model.load_state_dict(backbone, strict=False)
    if missing or unexpected:
        name = (missing or unexpected)[0]
        raise CheckpointError(f"{weights}: tensor {'model.' + name!r} is {'missing' if missing else 'unexpected'}")
    with torch.no_grad():
        rm.score.weight.copy_(state[HEAD_NAME])
    return rm.eval(), Tokenizer.from_hf_dir(directory)
