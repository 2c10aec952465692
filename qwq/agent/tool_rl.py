"""GRPO with tools in the loop: rollouts are multi-turn agent episodes, and only the model's own tokens get loss.

A rollout step takes P problems and samples G episodes of each on the engine (`episode_steps` driven by
`run_episodes`: every model turn of every running episode is one batched engine call; tools run between turns).
Each episode is one growing token sequence: tokens the policy sampled carry loss-mask 1 and the engine's raw-model
logprob (the old policy's, for the importance ratio), tokens the environment wrote (tool responses and the chat
markup around them) carry mask 0 and no logprob. The task's reward reads the last model turn; rewards become
group-relative advantages (`qwq.rl.losses.group_advantages`) and the clipped surrogate (`policy_loss`) is taken
over the masked tokens only, so the policy is never pushed towards or away from what a tool printed. The training
forward is GRPO's (qwq.rl.shared_prefix): each problem's prompt runs once, the episodes ride on its keys and values
as completion rows packed by length (tool output inside them, mask 0), and it normalises over the tokenizer's ids
as the engine does when it samples, so recomputed logprobs equal the engine's.

    engine = make_engine(model, tokenizer, config, template, batch, max_tokens)     # qwq.rl.modeling
    groups = sample_groups(engine, tokenizer, template, task, examples, 8, EpisodeLimits(), seed=0)
    batch = build_batch(groups, pad_id)              # None when every group's rewards are equal (no signal)
    stats = policy_update(model, optimizer, batch, UpdateSettings())
    engine.weights_changed()
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from qwq.agent.episode import Episode, Generation, episode_steps, run_episodes
from qwq.rl.data import Example
from qwq.rl.losses import LOSS_TYPES, Normalizer, group_advantages, policy_loss
from qwq.rl.shared_prefix import GroupedBatch, PromptState, grouped_batch, grouped_logprobs
from qwq.utils.errors import UsageError


@dataclass(frozen=True)
class EpisodeLimits:
    max_turns: int = 3  # model turns per episode
    max_new_tokens: int = 64  # per model turn
    max_total_tokens: int = 192  # model + environment tokens after the prompt


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0  # 0 = greedy. GRPO samples at 1.0 with no top-k/top-p, so the engine's raw-model
    top_p: float = 1.0  # logprobs are exactly the sampling distribution's (the ratio's denominator)
    top_k: int = 0


class EngineTurns:
    """`generate_batch` for `run_episodes` on a qwq.engine Engine: one request per running episode, raw-model
    logprobs of the sampled tokens, a seed per (call, request) derived from `seed` so a rollout replays exactly."""

    def __init__(self, engine: Any, sampling: Sampling, seed: int = 0) -> None:
        self.engine, self.sampling, self.seed = engine, sampling, seed
        self.calls = 0

    def __call__(self, requests: list[tuple[list[int], int]]) -> list[Generation]:
        from qwq.engine.sampling import SamplingParams

        s = self.sampling
        params = [SamplingParams(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, max_new_tokens=budget, n=1,
                                 seed=(self.seed * 1_000_003 + self.calls * 65_537 + i) % (1 << 62), logprobs=True)
                  for i, (_, budget) in enumerate(requests)]
        self.calls += 1
        results = self.engine.generate([ids for ids, _ in requests], params)
        out = []
        for result in results:
            sample = result.samples[0]
            out.append(Generation(list(sample.token_ids), list(sample.logprobs) if sample.logprobs else None,
                                  "length" if sample.finish_reason == "length" else "stop"))
        return out


@dataclass
class EpisodeGroup:
    example: Example
    episodes: list[Episode]
    rewards: list[float]

    def has_signal(self) -> bool:
        return len(self.rewards) >= 2 and max(self.rewards) > min(self.rewards)


def play(engine: Any, tokenizer: Any, template: Any, jobs: Sequence[tuple[list[dict], Sequence]],
         limits: EpisodeLimits, sampling: Sampling, seed: int = 0, tool_workers: int = 1) -> list[Episode]:
    """Run one episode per (messages, tools) job, all model turns batched on the engine."""
    steps = [episode_steps(tokenizer, messages, tools, max_steps=limits.max_turns,
                           max_new_tokens=limits.max_new_tokens, max_total_tokens=limits.max_total_tokens,
                           chat_template=template) for messages, tools in jobs]
    return run_episodes(EngineTurns(engine, sampling, seed), steps, workers=tool_workers)


def sample_groups(engine: Any, tokenizer: Any, template: Any, task: Any, examples: Sequence[Example], group_size: int,
                  limits: EpisodeLimits, sampling: Sampling = Sampling(), seed: int = 0, tool_workers: int = 1
                  ) -> list[EpisodeGroup]:
    """`group_size` tool-using episodes per example, scored by `task.reward` on each episode's last model turn."""
    if group_size < 2:
        raise UsageError(f"group_size must be >= 2 (advantages are relative to the group), got {group_size}")
    jobs = [(task.messages(ex), task.tools()) for ex in examples for _ in range(group_size)]
    episodes = play(engine, tokenizer, template, jobs, limits, sampling, seed, tool_workers)
    rewards = task.reward([ep.final_text for ep in episodes], [ex for ex in examples for _ in range(group_size)])
    groups = []
    for k, example in enumerate(examples):
        chunk = slice(k * group_size, (k + 1) * group_size)
        groups.append(EpisodeGroup(example, episodes[chunk], [0.0 if r is None else float(r) for r in rewards[chunk]]))
    return groups


@dataclass
class ToolBatch:
    rollouts: GroupedBatch  # each problem's prompt once; the episodes (model + environment tokens) as completion rows
    old_logprobs: torch.Tensor  # [B, C] old-policy logprob of each completion token (NaN where none was recorded)
    max_completion: int


def build_batch(groups: Sequence[EpisodeGroup], pad_id: int, scale_rewards: bool = True,
                keep_flat_groups: bool = False) -> ToolBatch | None:
    """Prompts, episodes, masks, old logprobs and advantages for `policy_update`. An episode is one completion row:
    its environment tokens stay in the row (the model reads them) with mask 0 (no loss). Groups whose rewards are
    all equal have zero advantages; they are left out unless `keep_flat_groups` (they would only dilute the token
    normaliser)."""
    prompt_index: dict[tuple, int] = {}
    prompts, group_of_row, completions, masks, olds, advantages = [], [], [], [], [], []
    max_completion = 1
    for group in groups:
        if not group.has_signal() and not keep_flat_groups:
            continue
        adv = group_advantages(torch.tensor(group.rewards), len(group.rewards), scale=scale_rewards)
        for ep, a in zip(group.episodes, adv.tolist()):
            if not ep.completion_ids:
                continue
            key = tuple(ep.prompt_ids)
            if key not in prompt_index:
                prompt_index[key] = len(prompts)
                prompts.append(list(ep.prompt_ids))
            group_of_row.append(prompt_index[key])
            completions.append(list(ep.completion_ids))
            masks.append(list(ep.loss_mask))
            olds.append([math.nan if lp is None else lp for lp in ep.logprobs])
            advantages.append(a)
            max_completion = max(max_completion, len(ep.completion_ids))
    if not completions or not any(any(m) for m in masks):
        return None
    rollouts = grouped_batch(prompts, group_of_row, completions, masks, advantages, pad_id)
    old = torch.full(rollouts.completions.shape, math.nan, dtype=torch.float32)
    for row, values in enumerate(olds):
        old[row, :len(values)] = torch.tensor(values, dtype=torch.float32)
    return ToolBatch(rollouts, old, max_completion)


@dataclass(frozen=True)
class UpdateSettings:
    loss: str = "dapo"
    clip_low: float = 0.2
    clip_high: float = 0.28
    grad_clip: float = 1.0
    micro_batch: int = 32
    vocab_limit: int | None = None  # the tokenizer's size: normalise as the engine samples (see the module doc)

    def __post_init__(self) -> None:
        if self.loss not in LOSS_TYPES:
            raise UsageError(f"unknown loss {self.loss!r}: expected one of {', '.join(LOSS_TYPES)}")


def policy_update(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: ToolBatch,
                  settings: UpdateSettings, params: Sequence[torch.nn.Parameter] | None = None) -> dict:
    """One optimizer step of the clipped surrogate over the sampled tokens. Old logprobs come from the rollout
    (the engine's raw-model logprobs); where none was recorded the current policy's (detached) stand in."""
    params = list(params) if params is not None else [p for p in model.parameters() if p.requires_grad]
    rollouts = batch.rollouts
    size = rollouts.rows
    chunks = rollouts.micro_batches(settings.micro_batch)  # similar lengths together: little padding
    tokens = int(rollouts.mask.sum())
    norm = Normalizer(settings.loss, size, tokens, batch.max_completion, micro_batches=len(chunks))
    model.train()
    optimizer.zero_grad(set_to_none=True)
    loss_total = entropy_sum = low = high = ratio = 0.0
    prompts = PromptState(model, rollouts)  # once per update; each chunk's backward stops at it
    for rows in chunks:
        logp, mask, entropy = grouped_logprobs(model, rollouts, rows, prompts, with_entropy=True,
                                               vocab_limit=settings.vocab_limit)
        old = batch.old_logprobs[rows, :logp.shape[1]]
        old = torch.where(torch.isnan(old), logp.detach(), old)
        loss, stats = policy_loss(logp, old, rollouts.advantages[rows], mask, norm, settings.clip_low,
                                  settings.clip_high)
        loss.backward()
        weight = float(mask.sum()) / max(1, tokens)
        loss_total += loss.item()
        entropy_sum += float((entropy * mask).sum())
        low += stats.clip_low_fraction * weight
        high += stats.clip_high_fraction * weight
        ratio += stats.ratio_mean * weight
    prompts.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(params, settings.grad_clip) if settings.grad_clip else \
        torch.tensor(0.0)
    optimizer.step()
    model.eval()
    return {"loss": loss_total, "entropy": entropy_sum / max(1, tokens), "clip_low": low, "clip_high": high,
            "ratio_mean": ratio, "grad_norm": float(grad_norm), "trained_sequences": size, "trained_tokens": tokens}


def episode_stats(episodes: Sequence[Episode], correct: Sequence[bool]) -> dict:
    """Accuracy and how the episodes went: tool use, tool errors, length, why they stopped."""
    n = max(1, len(episodes))
    reasons: dict[str, int] = {}
    for ep in episodes:
        reasons[ep.stop_reason] = reasons.get(ep.stop_reason, 0) + 1
    return {
        "n": len(episodes),
        "accuracy": sum(map(bool, correct)) / n,
        "tool_call_rate": sum(ep.n_tool_calls > 0 for ep in episodes) / n,
        "tool_calls_per_episode": sum(ep.n_tool_calls for ep in episodes) / n,
        "tool_error_rate": sum(ep.n_tool_errors > 0 for ep in episodes) / n,
        "generated_tokens": statistics.fmean(ep.n_generated for ep in episodes) if episodes else 0.0,
        "stop_reasons": dict(sorted(reasons.items())),
    }


def evaluate(engine: Any, tokenizer: Any, template: Any, task: Any, examples: Sequence[Example], with_tools: bool,
             limits: EpisodeLimits, sampling: Sampling = Sampling(temperature=0.0), samples: int = 1, seed: int = 0,
             tool_workers: int = 1, on_episodes: Callable[[list[Episode]], None] | None = None) -> dict:
    """`samples` episodes per example (greedy by default): with the task's tools offered, or with the same question
    and no tools. Accuracy is the mean over all episodes (pass@1 averaged over the samples)."""
    repeated = [ex for ex in examples for _ in range(samples)]
    jobs = [(task.messages(ex, with_tools=with_tools), task.tools() if with_tools else []) for ex in repeated]
    episodes = play(engine, tokenizer, template, jobs, limits, sampling, seed, tool_workers)
    rewards = task.reward([ep.final_text for ep in episodes], repeated)
    if on_episodes is not None:
        on_episodes(episodes)
    return episode_stats(episodes, [r is not None and r >= 1.0 for r in rewards])
