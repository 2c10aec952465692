"""GRPO on the engine: sample groups, score them, turn rewards into group-relative advantages, take a clipped
policy-gradient step (grpo / dapo / dr_grpo / bnpo), repeat.

Per step:
  1. draw `prompts_per_step` train problems from the task mixture and sample `group_size` completions of each on
     the engine (one prefill per prompt, per-request seeds from (seed, stage, step));
  2. reward them (each task's reward spec; None = cannot score, masked), optionally through a control transform;
  3. dynamic sampling: groups whose rewards are all equal carry no signal; they are dropped and new prompts drawn,
     up to `max_refills` rounds;
  4. overlong filtering: truncated completions get no loss (their unfinished answer says nothing about the policy);
  5. `updates_per_batch` optimizer passes over the batch in micro-batches (old log-probs taken before the first);
     each prompt runs once per pass and the completions are packed by length (qwq.rl.shared_prefix).

Before the first step a learnability probe samples the starting model and refuses to train (LearnabilityError,
a clear message) when it solves nothing: every advantage would be zero.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from qwq.rl.checkpoint import TrainerState, latest_checkpoint, load_checkpoint, save_checkpoint
from qwq.rl.config import GRPOConfig, RunConfig
from qwq.rl.losses import Normalizer, group_advantages, policy_loss
from qwq.rl.metrics import MetricsLog, autocast_context, rollout_dtype, step_rng, step_seed
from qwq.rl.rewards import apply_control
from qwq.rl.shared_prefix import GroupedBatch, PromptState, grouped_batch, grouped_logprobs
from qwq.rl.rollout import (Group, TaskSlot, draw_examples, generate_groups, sampling_params, score_groups,
                            starts_in_reasoning)
from qwq.rl.sft import make_optimizer, trainable_parameters
from qwq.utils.errors import QwqError


class LearnabilityError(QwqError):
    """The starting model solves none of the probe problems: RL would have no signal."""


@dataclass
class Batch:
    rollouts: GroupedBatch  # prompts once, completions as rows (qwq.rl.shared_prefix): the rows that get a gradient
    max_completion: int
    # What the loss normalises by: every completion (and its loss tokens) of the kept groups, including the rows left
    # out of `rollouts` because their gradient is exactly zero (see GRPOTrainer._batch).
    sequences: int
    tokens: int


class GRPOTrainer:
    def __init__(self, model, model_config, tokenizer, template, slots: Sequence[TaskSlot], cfg: GRPOConfig,
                 run: RunConfig, stage: str, stage_dir: Path, engine_factory, loop_breaker: bool = False,
                 trainable_only: bool = False) -> None:
        self.model, self.model_config, self.tokenizer, self.template = model, model_config, tokenizer, template
        self.slots, self.cfg, self.run, self.stage = list(slots), cfg, run, stage
        self.stage_dir = Path(stage_dir)
        self.rollout_model = self._rollout_copy(model)
        self.engine = engine_factory(self.rollout_model)
        self.loop_breaker = loop_breaker
        self.trainable_only = trainable_only
        self.params = trainable_parameters(model)
        self.optimizer = make_optimizer(self.params, cfg.lr, cfg.weight_decay)
        self.reference = None
        if cfg.kl_coef:
            self.reference = copy.deepcopy(model).eval()
            for p in self.reference.parameters():
                p.requires_grad_(False)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.starts_in_reasoning = starts_in_reasoning(template)

    # ---- sampling ------------------------------------------------------------------------------------------------
    def _rollout_copy(self, model):
        """The model the engine samples from: `model` itself, or a copy in run.rollout_dtype (bf16 matmuls are ~2x
        faster on CPUs with native bf16), kept equal to the master weights by _sync_rollout_model."""
        param = next(iter(model.parameters()))
        dtype = rollout_dtype(self.run, param.device.type)
        if dtype == param.dtype:
            return model
        shadow = copy.deepcopy(model).to(dtype).eval()
        for p in shadow.parameters():
            p.requires_grad_(False)
        return shadow

    @torch.no_grad()
    def _sync_rollout_model(self, everything: bool = False) -> None:
        """Copy the master weights into the rollout copy (the trainable ones, or all after a checkpoint load), then
        tell the engine its weights changed."""
        if self.rollout_model is not self.model:
            for target, source in zip(self.rollout_model.parameters(), self.model.parameters()):
                if everything or source.requires_grad:
                    target.copy_(source)
        self.engine.weights_changed()

    def _sample(self, step: int, round_: int, count: int, group_size: int) -> tuple[list[Group], dict]:
        rng = step_rng(self.run.seed, self.stage, step, f"prompts/{round_}")
        picks = draw_examples(self.slots, count, rng)
        base = step_seed(self.run.seed, self.stage, step, f"sampling/{round_}")

        def params_for(i: int):
            return sampling_params(self.cfg, group_size, (base + 7919 * i) % (1 << 62), self.loop_breaker)

        groups, gen_s = generate_groups(self.engine, self.template, self.tokenizer, picks, params_for)
        score_s = score_groups(groups, self.slots, self.starts_in_reasoning)
        if self.cfg.reward_control != "none":
            flat = [c for g in groups for c in g.completions]
            rewards = apply_control([c.reward for c in flat], self.cfg.reward_control,
                                    step_rng(self.run.seed, self.stage, step, f"control/{round_}"),
                                    [len(g.completions) for g in groups])
            for completion, reward in zip(flat, rewards):
                completion.reward = reward
        return groups, {"generate_s": gen_s, "reward_s": score_s}

    def probe(self) -> dict:
        """Sample the starting model on `probe_prompts` train problems; refuse when none is ever solved."""
        groups, _ = self._sample(-1, 0, self.cfg.probe_prompts, self.cfg.group_size)
        solved = sum(any(c.correct for c in g.completions) for g in groups)
        samples = sum(len(g.completions) for g in groups)
        correct = sum(c.correct for g in groups for c in g.completions)
        truncated = sum(c.finish_reason == "length" for g in groups for c in g.completions)
        result = {"prompts": len(groups), "solved_prompts": solved, "samples": samples, "correct_samples": correct,
                  "signal_groups": sum(g.has_signal() for g in groups), "truncated_samples": truncated}
        if solved < self.cfg.probe_min_solved:
            names = ", ".join(sorted({s.task.name for s in self.slots}))
            example = groups[0].completions[0].text[-160:] if groups and groups[0].completions else ""
            hint = (f"; {truncated} of {samples} samples hit {self.stage}.max_new_tokens={self.cfg.max_new_tokens}"
                    if truncated else "")
            raise LearnabilityError(
                f"learnability probe: the starting model solved {solved} of {len(groups)} probe problems "
                f"({correct} of {samples} samples) on {names}{hint}; GRPO would get no reward signal. Train the "
                f"cold start longer, use easier tasks, raise max_new_tokens, or lower {self.stage}.probe_min_solved. "
                f"A sample ends with: {example!r}")
        return result

    # ---- batches -------------------------------------------------------------------------------------------------
    def _skips_zero_advantage(self) -> bool:
        """A row whose advantage is 0 adds exactly nothing to the gradient of the clipped surrogate, so it need not
        run at all, provided the loss is normalised by whole-batch counts (grpo, dapo, dr_grpo; bnpo averages per
        micro-batch) and no KL term pulls on it. Without dynamic sampling (TRL's setting) zero-variance groups are
        a quarter to a half of the batch."""
        return self.cfg.loss != "bnpo" and not self.cfg.kl_coef

    def _batch(self, groups: Sequence[Group]) -> Batch | None:
        prompts, group_of_row, completions, masks, advantages = [], [], [], [], []
        max_completion, sequences, tokens = 1, 0, 0
        skip_zero = self._skips_zero_advantage()
        spare = None
        for group in groups:
            known = [r for r in group.rewards if r is not None]
            if len(known) < 2:
                continue
            # advantages over the scorable completions only; unscorable ones get no loss
            filled = torch.tensor([r if r is not None else 0.0 for r in group.rewards])
            keep = torch.tensor([r is not None for r in group.rewards])
            adv = torch.zeros(len(filled))
            adv[keep] = group_advantages(filled[keep], int(keep.sum()), scale=self.cfg.scale_rewards)
            prompt_index = len(prompts)
            for completion, a, k in zip(group.completions, adv.tolist(), keep.tolist()):
                if not completion.token_ids:
                    continue
                train = k and not (self.cfg.overlong_filter and completion.finish_reason == "length")
                mask = [0 if (forced or not train) else 1 for forced in completion.forced]
                sequences += 1
                tokens += sum(mask)
                max_completion = max(max_completion, len(completion.token_ids))
                if not any(mask) or (skip_zero and a == 0.0):
                    # kept aside: a batch of nothing but such rows still takes its (zero-gradient) optimizer step
                    spare = spare or (group.prompt_ids, completion.token_ids, mask, a)
                    continue
                group_of_row.append(prompt_index)
                completions.append(completion.token_ids)
                masks.append(mask)
                advantages.append(a)
            if group_of_row and group_of_row[-1] == prompt_index:
                prompts.append(group.prompt_ids)
        if not completions and spare is not None and tokens:
            prompts, group_of_row, completions, masks, advantages = [spare[0]], [0], [spare[1]], [spare[2]], [spare[3]]
        if not completions or not tokens:
            return None
        return Batch(grouped_batch(prompts, group_of_row, completions, masks, advantages, self.pad_id), max_completion,
                     sequences, tokens)

    @torch.no_grad()
    def _logprobs(self, model, batch: Batch, chunks: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        prompts = PromptState(model, batch.rollouts)
        return [grouped_logprobs(model, batch.rollouts, rows, prompts)[0] for rows in chunks]

    def _update(self, batch: Batch) -> dict:
        cfg = self.cfg
        rollouts = batch.rollouts
        chunks = rollouts.micro_batches(cfg.micro_batch)  # similar lengths together: little padding
        norm = Normalizer(cfg.loss, batch.sequences, batch.tokens, batch.max_completion, micro_batches=len(chunks))
        tokens = int(rollouts.mask.sum())  # the tokens that run: the statistics below average over them
        reference = self._logprobs(self.reference, batch, chunks) if self.reference is not None else None
        old = None
        if cfg.updates_per_batch > 1:
            self.model.eval()
            old = self._logprobs(self.model, batch, chunks)
        self.model.train()
        stats_sum = {"loss": 0.0, "clip_low": 0.0, "clip_high": 0.0, "kl": 0.0, "entropy": 0.0, "grad_norm": 0.0}
        for _ in range(cfg.updates_per_batch):
            self.optimizer.zero_grad(set_to_none=True)
            loss_total, entropy_sum = 0.0, 0.0
            low = high = kl = 0.0
            with autocast_context(self.run.autocast):
                prompts = PromptState(self.model, rollouts)  # once per update; each chunk's backward stops at it
            for k, rows in enumerate(chunks):
                with autocast_context(self.run.autocast):
                    logp, mask, entropy = grouped_logprobs(self.model, rollouts, rows, prompts, with_entropy=True)
                old_logp = old[k] if old is not None else logp.detach()
                ref = reference[k] if reference is not None else None
                loss, st = policy_loss(logp, old_logp, rollouts.advantages[rows], mask, norm, cfg.clip_low,
                                       cfg.clip_high, ref, cfg.kl_coef)
                loss.backward()
                weight = float(mask.sum()) / max(1, tokens)
                loss_total += loss.item()
                entropy_sum += float((entropy * mask).sum())
                low, high, kl = low + st.clip_low_fraction * weight, high + st.clip_high_fraction * weight, \
                    kl + st.kl * weight
            prompts.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip) if cfg.grad_clip else \
                torch.tensor(0.0)
            self.optimizer.step()
            for key, value in (("loss", loss_total), ("clip_low", low), ("clip_high", high), ("kl", kl),
                               ("entropy", entropy_sum / max(1, tokens)), ("grad_norm", float(grad_norm))):
                stats_sum[key] += value / cfg.updates_per_batch
        self.model.eval()
        self._sync_rollout_model()
        return stats_sum

    # ---- the loop ------------------------------------------------------------------------------------------------
    def train(self, resume: bool = False, progress=None) -> tuple[list[dict], dict]:
        """Run (or resume) the stage; the engine's worker processes, if any, are stopped at the end."""
        try:
            return self._train(resume, progress)
        finally:
            close = getattr(self.engine, "close", None)
            if close is not None:
                close()

    def _train(self, resume: bool, progress) -> tuple[list[dict], dict]:
        cfg = self.cfg
        log = MetricsLog(self.stage_dir / "metrics.jsonl")
        state = TrainerState(0, 0, [], {})
        if resume and (found := latest_checkpoint(self.stage_dir)) is not None:
            state = load_checkpoint(found, self.model, self.optimizer)
            self._sync_rollout_model(everything=True)
        log.restart(state.metrics or [])
        extra = dict(state.extra or {})
        if "probe" not in extra:
            extra["probe"] = self.probe()
        state.extra = extra
        task = progress.add_task(f"{self.stage} GRPO", total=cfg.steps, completed=state.step) if progress else None
        while state.step < cfg.steps:
            started, cpu_started = time.perf_counter(), self._cpu_seconds()
            for group in self.optimizer.param_groups:
                warm = min(1.0, (state.step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
                group["lr"] = cfg.lr * warm
            groups, timing = self._sample(state.step, 0, cfg.prompts_per_step, cfg.group_size)
            sampled = list(groups)
            kept = [g for g in groups if g.has_signal()] if cfg.dynamic_sampling else list(groups)
            refills = 0
            while cfg.dynamic_sampling and len(kept) < cfg.prompts_per_step and refills < cfg.max_refills:
                refills += 1
                more, t = self._sample(state.step, refills, cfg.prompts_per_step - len(kept), cfg.group_size)
                timing = {k: timing[k] + t[k] for k in timing}
                sampled += more
                kept += [g for g in more if g.has_signal()]
            kept = kept[:cfg.prompts_per_step]
            batch = self._batch(kept)
            train_started = time.perf_counter()
            stats = self._update(batch) if batch is not None else {}
            state.step += 1
            state.cursor += len(sampled)
            record = self._record(state.step, groups, sampled, kept, stats, timing, refills,
                                  time.perf_counter() - train_started, time.perf_counter() - started)
            record["cpu_s"] = self._cpu_seconds() - cpu_started  # sandbox runs excluded
            log.write(record)
            state.metrics = log.records
            if progress:
                progress.update(task, advance=1, description=f"{self.stage} GRPO  reward {record['reward']:.2f}  "
                                                             f"acc {record['accuracy']:.2f}")
            if self.run.checkpoint_every and state.step % self.run.checkpoint_every == 0 and state.step < cfg.steps:
                save_checkpoint(self.stage_dir, self.model, self.model_config, self.optimizer, state,
                                self.run.keep_checkpoints, self.trainable_only)
        save_checkpoint(self.stage_dir, self.model, self.model_config, self.optimizer, state, self.run.keep_checkpoints,
                        self.trainable_only)
        return log.records, extra

    def _cpu_seconds(self) -> float:
        """CPU time of this process and of the engine's worker processes (if any), so far."""
        return time.process_time() + getattr(self.engine, "worker_cpu_seconds", 0.0)

    def _record(self, step: int, first: Sequence[Group], sampled: Sequence[Group], kept: Sequence[Group],
                stats: dict, timing: dict, refills: int, train_s: float, step_s: float) -> dict:
        """Step metrics; reward / accuracy / lengths are over the first sampling round (the policy's own
        distribution, before dynamic sampling picks the informative groups)."""
        flat = [c for g in first for c in g.completions]
        rewards = [c.reward for c in flat if c.reward is not None]
        record = {
            "step": step,
            "reward": statistics.fmean(rewards) if rewards else math.nan,
            "accuracy": statistics.fmean(float(c.correct) for c in flat) if flat else math.nan,
            "zero_variance_fraction": statistics.fmean(float(not g.has_signal()) for g in first) if first else 0.0,
            "truncated_fraction": statistics.fmean(float(c.finish_reason == "length") for c in flat) if flat else 0.0,
            "unscorable_fraction": statistics.fmean(float(c.reward is None) for c in flat) if flat else 0.0,
            "response_length": statistics.fmean(len(c.token_ids) for c in flat) if flat else 0.0,
            "groups_sampled": len(sampled), "groups_trained": len(kept), "refills": refills,
            "generate_s": timing["generate_s"], "reward_s": timing["reward_s"], "train_s": train_s, "step_s": step_s,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        for key in ("loss", "entropy", "kl", "clip_low", "clip_high", "grad_norm"):
            record[key] = stats.get(key, math.nan)
        by_task: dict[str, list] = {}
        for group in first:
            by_task.setdefault(group.task, []).extend(group.completions)
        for name, completions in by_task.items():
            known = [c.reward for c in completions if c.reward is not None]
            record[f"reward/{name}"] = statistics.fmean(known) if known else math.nan
            record[f"accuracy/{name}"] = statistics.fmean(float(c.correct) for c in completions)
            components: dict[str, list] = {}
            for c in completions:
                for key, value in c.components.items():
                    if value is not None:
                        components.setdefault(key, []).append(value)
            for key, values in components.items():
                record[f"reward/{name}/{key}"] = statistics.fmean(values)
        return record
