"""Train a tiny model to use a tool, end to end, and measure whether the tool helps (`qwq agent train-tool`).

    tokenizer   a byte-level BPE trained on the task's teacher episodes (prompts with and without tools, model turns,
                tool responses), carrying QwQ's special tokens and chat template
    cold start  SFT on teacher episodes of the task (`tool_mod` by default, qwq.agent.tool_task) run through
                `run_episode` with `scripted_generate`: the tool really runs and only the teacher's tokens carry
                loss; the teacher slips (skips the tool and guesses, calls it with the wrong operation, miscopies an
                operand) at `slip_rate`. Direct-answer demonstrations on the no-tool prompt train the same model for
                the baseline. (qwq.rl.sft's optimizer, a warmup-stable-decay schedule, and a forward that runs the
                shared prompt prefix once per batch: about 3.5x cheaper here.)
    eval        held-out problems with the tool offered and without it (same question otherwise): sampled at QwQ's
                recommended settings (the headline accuracy) and greedy
    GRPO        `steps` steps of tool-using episodes (qwq.agent.tool_rl), then eval again

Outputs under `out`: tokenizer/, sft/ (metrics.jsonl, model/), tool_grpo/metrics.jsonl, final/ (a model directory
any `-m` consumer loads, e.g. `qwq agent -m out/final --tools python`), summary.json.

Why `tool_mod` ("What is (a * b) % 7?" with 3-digit operands) by default: the skill the tool needs is copying
digits (the operands into the call, the printed result into the answer), and whether a 0.88M-parameter model learns
to copy within the budget is a matter of seed: the SFT loss on the teacher's tokens sits near 0.25-0.28 (operands not
copied) until the copying forms, then falls below ~0.1. SFT checks held-out teacher turns every
`sft_check_every` steps and stops early once the model reproduces them (qwq.agent.tool_sft); the epochs are a cap.
Measured with the older wording ("the remainder when a * b is divided by 7", call `print(a * b % 7)`, style=words):
seed 0 copied from SFT step ~370, seed 1 never in 564 steps; the seed-0 model copied by a fixed offset (one extra
word between the operands and the call: 30/30 exact calls -> 0/30). With the expression wording the call repeats
the question's span token for token: seed 2 copied from step ~300 (0.84 with the tool before RL), seed 1 from ~450,
too late for the former 564-step cap (0.18), whose decay started at step 451. The copy forms digit by digit, 7-9
last (they never occur in the answer copy, the printed remainder 1-6): at the 846-step cap seed 1's model copied
every operand digit 0-6 and no 8 or 9 (held-out turns 0.16, 0.11 -> 0.14 with the tool after RL), seed 0's missed
most 8s (0.41; 0.44 -> 0.54 with the tool, 0.13 without); seed 2's reproduced them all from step 500 and stopped at
625 (0.84 -> 0.99 with the tool, 0.14 without). A run whose cold start never copies stays near chance with
the tool too: 20 GRPO steps do not find the copy from reward alone. `tool_arith` (kept as `--set task=tool_arith`) needs the same
habit plus a copy of the 10-digit product; with 5-digit operands its cold start called the tool in ~100% of
episodes and still scored 0/64 with and without it. Without the tool, tool_mod's remainder must be computed from
all six digits, which a model this size cannot do: it stays at chance (1/6).
"""

from __future__ import annotations

import json
import random
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Sequence

from qwq.agent.episode import Episode, run_episode, scripted_generate
from qwq.agent.tool_rl import (EpisodeLimits, Sampling, UpdateSettings, build_batch, episode_stats, evaluate,
                               policy_update, sample_groups)
from qwq.agent.tool_sft import answer_mask, sft_on_episodes
from qwq.agent.tool_task import TASKS, ToolArithmeticTask, ToolModTask, ToolTask
from qwq.agent.tools import Tool
from qwq.utils.atomic import atomic_write_text
from qwq.utils.errors import UsageError

STAGE = "tool_grpo"
EVAL_SEED = 12345  # held-out problems are the same for every run seed


@dataclass
class ToolRLConfig:
    seed: int = 0
    threads: int = 2
    tool: str = "python"  # python (the sandbox) | calculator
    task: str = "tool_mod"  # tool_mod | tool_arith (qwq.agent.tool_task)
    # tool_mod: (a * b) mod `modulus` for `digits`-digit operands
    digits: int = 3
    modulus: int = 7
    style: str = "expression"  # "expression": What is (a * b) % m? | "words": the remainder when a * b is divided by m
    think_variants: int = 1  # teacher thoughts before the call (qwq.agent.tool_task.MOD_THOUGHTS)
    # tool_arith: 5-digit operands from 31623 up: every product has 10 digits, so each copy the model makes
    # (operands into the call, the printed product into the answer) spans a fixed distance.
    min_digits: int = 5
    max_digits: int = 5
    min_operand: int = 31623
    # tokenizer and model
    vocab_size: int = 768
    preset: str = "tiny"
    model_overrides: dict = field(default_factory=lambda: {"hidden_size": 128, "intermediate_size": 384})
    # cold start
    sft_tool_examples: int = 1200
    sft_direct_examples: int = 300  # the no-tool baseline is trained to answer, not an untrained prompt
    slip_rate: float = 0.5
    # the teacher's mistakes, a subset of the task's `slips`; None: all of tool_mod's, only wrong_op for tool_arith
    slips: list | None = None
    # a cap (the stop check below ends SFT once the model copies): 18 epochs = 846 steps. At 12 (564) the linear
    # decay began at step 451, just when seed 1's copying was forming, and it never finished forming. 846 is still
    # short for seeds 0 and 1 (digits 8 and 9 not yet copied at the cap; see the module docstring)
    sft_epochs: float = 18.0
    sft_batch_size: int = 32
    sft_lr: float = 3e-3
    # stop once the model writes whole clean held-out teacher turns (qwq.agent.tool_sft); sft_epochs is then a cap
    sft_stop_accuracy: float = 0.9  # 0: always run the cap
    sft_check_every: int = 25
    sft_check_problems: int = 32
    sft_tail: float = 0.25  # the decay after the stop, as a fraction of the steps taken
    # GRPO
    steps: int = 20
    prompts_per_step: int = 8
    group_size: int = 8
    lr: float = 3e-4
    loss: str = "dapo"
    clip_low: float = 0.2
    clip_high: float = 0.28
    # episodes
    max_turns: int = 3
    max_new_tokens: int = 64
    max_total_tokens: int = 192
    eval_problems: int = 64
    eval_samples: int = 2  # sampled episodes per held-out problem (plus one greedy)
    eval_temperature: float = 0.6  # QwQ's recommended sampling
    eval_top_p: float = 0.95
    eval_top_k: int = 40
    tool_workers: int = 4  # threads running tools between model turns (sandbox runs overlap)

    def check(self) -> None:
        positive = ("threads", "vocab_size", "sft_tool_examples", "sft_batch_size", "prompts_per_step", "max_turns",
                    "max_new_tokens", "max_total_tokens", "eval_problems", "eval_samples", "tool_workers",
                    "sft_check_every", "sft_check_problems")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise UsageError(f"{name} must be a positive integer, got {value!r}")
        if self.steps < 0 or self.sft_direct_examples < 0:
            raise UsageError("steps and sft_direct_examples must be >= 0")
        if self.group_size < 2:
            raise UsageError(f"group_size must be >= 2, got {self.group_size}")
        if self.task not in TASKS:
            raise UsageError(f"unknown task {self.task!r}: expected one of {', '.join(TASKS)}")
        if self.tool not in ("python", "calculator"):
            raise UsageError(f"tool must be python or calculator, got {self.tool!r}")
        if not 0.0 <= self.slip_rate <= 1.0:
            raise UsageError(f"slip_rate must be in [0, 1], got {self.slip_rate}")
        if not (self.lr > 0 and self.sft_lr > 0 and self.sft_epochs > 0):
            raise UsageError("lr, sft_lr and sft_epochs must be > 0")
        if not (0.0 <= self.sft_stop_accuracy <= 1.0 and self.sft_tail >= 0.0):
            raise UsageError(f"sft_stop_accuracy must be in [0, 1] and sft_tail >= 0, got {self.sft_stop_accuracy}, "
                             f"{self.sft_tail}")
        UpdateSettings(loss=self.loss)  # validates the loss name

    @classmethod
    def from_dict(cls, data: dict) -> "ToolRLConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"unknown tool-RL setting(s): {', '.join(unknown)}")
        return cls(**data)

    @property
    def limits(self) -> EpisodeLimits:
        return EpisodeLimits(self.max_turns, self.max_new_tokens, self.max_total_tokens)


def make_task(cfg: ToolRLConfig) -> ToolTask:
    try:
        if cfg.task == "tool_mod":
            return ToolModTask(cfg.digits, cfg.modulus, tool=cfg.tool, style=cfg.style,
                               think_variants=cfg.think_variants)
        return ToolArithmeticTask(cfg.min_digits, cfg.max_digits, tool=cfg.tool, min_operand=cfg.min_operand)
    except ValueError as exc:
        raise UsageError(f"{cfg.task}: {exc}") from None


def teacher_slips(cfg: ToolRLConfig) -> list[str]:
    """The teacher's mistakes: the configured ones, checked against the task's, or the task's default (all of
    tool_mod's; only wrong_op for tool_arith, its earlier default)."""
    known = TASKS[cfg.task].slips
    if cfg.slips is None:
        return list(known) if cfg.task == "tool_mod" else ["wrong_op"]
    if not cfg.slips or set(cfg.slips) - set(known):
        raise UsageError(f"slips for {cfg.task} must be a non-empty subset of {', '.join(known)}, got {cfg.slips!r}")
    return list(cfg.slips)


def parse_overrides(pairs: Sequence[str]) -> dict:
    """`key=value` strings -> settings, each value read as JSON when it parses (numbers, booleans, objects) and as a
    string otherwise; keys are checked against ToolRLConfig."""
    known = {f.name for f in fields(ToolRLConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set expects key=value, got {pair!r}")
        if key not in known:
            raise UsageError(f"unknown tool-RL setting {key!r}; known: {', '.join(sorted(known))}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def cached_tools(tools: Sequence[Tool]) -> list[Tool]:
    """The same tools, each answering a repeated call (same arguments) from memory: the teacher's episodes are run
    twice (once to collect the tokenizer corpus, once with the trained tokenizer) but each tool call runs once."""
    out = []
    for t in tools:
        memo: dict[str, Any] = {}

        def fn(_fn=t.fn, _memo=memo, **arguments):
            key = json.dumps(arguments, sort_keys=True)
            if key not in _memo:
                _memo[key] = _fn(**arguments)
            return _memo[key]

        out.append(Tool(t.name, t.description, t.parameters, fn))
    return out


def teacher_episodes(task: ToolTask, tool_examples, direct_examples, tokenizer, template, tools,
                     slip_rate: float, seed: int, limits: EpisodeLimits, workers: int,
                     slips: Sequence[str] | None = None) -> list[Episode]:
    """Demonstration episodes: tool traces (with slips) on the tool prompt, direct answers on the no-tool prompt."""
    rng = random.Random(f"{seed}/tool-teacher")
    slips = task.slips if slips is None else slips
    jobs = [(task.messages(ex), tools, task.teacher_turns(ex, rng, slip_rate, slips)) for ex in tool_examples]
    jobs += [(task.messages(ex, with_tools=False), [], [task.direct_turn(ex)]) for ex in direct_examples]

    def run(job):
        messages, job_tools, turns = job
        return run_episode(scripted_generate(tokenizer, turns), tokenizer, messages, job_tools,
                           max_steps=limits.max_turns, max_new_tokens=10_000, max_total_tokens=10_000,
                           chat_template=template)

    if workers <= 1:
        return [run(job) for job in jobs]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(run, jobs))


def _build_tokenizer(task, tool_examples, direct_examples, tools, cfg: ToolRLConfig, out: Path):
    """Run the teacher once with a byte-level tokenizer to get the episodes' exact text, train the BPE on it."""
    from qwq.rl.modeling import train_tiny_tokenizer
    from qwq.tokenizer import QWQ_ADDED_TOKENS
    from qwq.tokenizer.chat import ChatTemplate

    byte_level = train_tiny_tokenizer([""], 256 + len(QWQ_ADDED_TOKENS))
    template = ChatTemplate.for_tokenizer(byte_level)
    episodes = teacher_episodes(task, tool_examples, direct_examples, byte_level, template, tools, cfg.slip_rate,
                                cfg.seed, cfg.limits, cfg.tool_workers, teacher_slips(cfg))
    texts = [byte_level.decode(ep.prompt_ids + ep.completion_ids, skip_special_tokens=False) for ep in episodes]
    tokenizer = train_tiny_tokenizer(texts, cfg.vocab_size)
    tokenizer.save(out / "tokenizer")
    return tokenizer, ChatTemplate.for_tokenizer(tokenizer)


def _draw(task, count: int, seed: int, step: int) -> list:
    from qwq.rl.metrics import step_rng
    from qwq.rl.rollout import TaskSlot, draw_examples

    return [ex for _, ex in draw_examples([TaskSlot(task, 1.0, None)], count, step_rng(seed, STAGE, step, "prompts"))]


def _evaluate_both(engine, tokenizer, template, task, examples, cfg: ToolRLConfig) -> dict:
    """Held-out accuracy with and without the tool: sampled as QwQ is meant to be run (the headline `accuracy`,
    mean over `eval_samples` episodes per problem) and greedy (`greedy_accuracy`)."""
    started = time.perf_counter()
    samples: dict[str, str] = {}
    sampling = Sampling(cfg.eval_temperature, cfg.eval_top_p, cfg.eval_top_k)
    result: dict[str, Any] = {}
    for mode, with_tools in (("with_tool", True), ("without_tool", False)):
        def keep(episodes, mode=mode):
            samples[mode] = tokenizer.decode(episodes[0].completion_ids, skip_special_tokens=False)

        stats = evaluate(engine, tokenizer, template, task, examples, with_tools, cfg.limits, sampling,
                         cfg.eval_samples, EVAL_SEED, cfg.tool_workers, keep)
        greedy = evaluate(engine, tokenizer, template, task, examples, with_tools, cfg.limits,
                          tool_workers=cfg.tool_workers)
        stats["greedy_accuracy"] = greedy["accuracy"]
        stats["greedy_tool_call_rate"] = greedy["tool_call_rate"]
        result[mode] = stats
    result["seconds"] = time.perf_counter() - started
    result["sample"] = samples
    return result


def train_tool_use(cfg: ToolRLConfig, out: str | Path, log: Callable[[str], None] | None = None) -> dict:
    """The whole run; returns the summary (also written to `out/summary.json`)."""
    import torch

    from qwq.rl.metrics import MetricsLog, set_threads, step_seed
    from qwq.rl.modeling import make_engine, new_model, save_model_dir, tiny_config
    from qwq.rl.sft import SFTItem, make_optimizer
    from qwq.utils.seeding import seed_everything

    cfg.check()
    out = Path(out)
    if (out / "summary.json").exists() or (out / STAGE / "metrics.jsonl").exists():
        raise UsageError(f"{out} already holds a tool-RL run: choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    say = log or (lambda message: None)
    set_threads(cfg.threads)
    seed_everything(cfg.seed)
    torch.manual_seed(cfg.seed)
    seconds: dict[str, float] = {}
    started = clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = round(now - clock, 2)
        clock = now

    task = make_task(cfg)
    teacher_tools = cached_tools(task.tools())
    tool_examples = task.examples("train", cfg.sft_tool_examples, cfg.seed)
    direct_examples = task.examples("train", cfg.sft_direct_examples, cfg.seed + 1) if cfg.sft_direct_examples else []
    heldout = task.examples("heldout", cfg.eval_problems, EVAL_SEED)
    say(f"tokenizer: running {len(tool_examples) + len(direct_examples)} teacher episodes ({cfg.tool} tool)")
    tokenizer, template = _build_tokenizer(task, tool_examples, direct_examples, teacher_tools, cfg, out)
    lap("tokenizer")

    episodes = teacher_episodes(task, tool_examples, direct_examples, tokenizer, template, teacher_tools,
                                cfg.slip_rate, cfg.seed, cfg.limits, cfg.tool_workers, teacher_slips(cfg))
    items = [SFTItem(ep.prompt_ids + ep.completion_ids, [0] * len(ep.prompt_ids) + ep.loss_mask) for ep in episodes]
    check_items = []
    if cfg.sft_stop_accuracy > 0:  # clean tool episodes on held-out problems the evaluation does not use
        taken = {ex.key for ex in heldout}
        pool = task.examples("heldout", cfg.sft_check_problems + len(heldout), EVAL_SEED + 1)
        check = [ex for ex in pool if ex.key not in taken][:cfg.sft_check_problems]
        think = tokenizer.token_to_id("<think>"), tokenizer.token_to_id("</think>")
        check_items = [SFTItem(ep.prompt_ids + ep.completion_ids,
                               answer_mask(ep.prompt_ids + ep.completion_ids,
                                           [0] * len(ep.prompt_ids) + ep.loss_mask, *think))
                       for ep in teacher_episodes(task, check, [], tokenizer, template, teacher_tools, 0.0, cfg.seed,
                                                  cfg.limits, cfg.tool_workers, teacher_slips(cfg))]
    model_config = tiny_config(tokenizer, cfg.preset, cfg.model_overrides)
    model = new_model(model_config, cfg.seed)
    say(f"cold start: SFT on {len(items)} teacher episodes, {model_config.num_parameters():,} parameters")
    sft_records = sft_on_episodes(model, items, cfg, tokenizer.pad_token_id, out / "sft" / "metrics.jsonl",
                                  len(tokenizer), check_items)
    copy_step = next((r["step"] for r in sft_records if r.get("copied")), None)
    say(f"cold start: {len(sft_records)} steps, loss {sft_records[-1]['loss']:.3f}, "
        + (f"copies from step {copy_step}" if copy_step else "the stop rate was never reached"))
    save_model_dir(model, model_config, tokenizer, out / "sft" / "model")
    lap("sft")

    longest_prompt = max(len(ep.prompt_ids) for ep in episodes)
    batch = cfg.prompts_per_step * cfg.group_size
    engine = make_engine(model, tokenizer, model_config, template, max(batch, cfg.eval_problems * cfg.eval_samples),
                         longest_prompt + cfg.max_total_tokens + cfg.max_new_tokens + 16)
    before = _evaluate_both(engine, tokenizer, template, task, heldout, cfg)
    say(f"before RL: accuracy with tool {before['with_tool']['accuracy']:.3f}, "
        f"without {before['without_tool']['accuracy']:.3f}")
    lap("eval_before")

    optimizer = make_optimizer([p for p in model.parameters() if p.requires_grad], cfg.lr, 0.0)
    settings = UpdateSettings(cfg.loss, cfg.clip_low, cfg.clip_high, vocab_limit=len(tokenizer))
    metrics = MetricsLog(out / STAGE / "metrics.jsonl")
    metrics.restart([])
    for step in range(cfg.steps):
        t0 = time.perf_counter()
        examples = _draw(task, cfg.prompts_per_step, cfg.seed, step)
        groups = sample_groups(engine, tokenizer, template, task, examples, cfg.group_size, cfg.limits, Sampling(),
                               seed=step_seed(cfg.seed, STAGE, step, "sampling"), tool_workers=cfg.tool_workers)
        t1 = time.perf_counter()
        flat = [ep for g in groups for ep in g.episodes]
        rewards = [r for g in groups for r in g.rewards]
        train_batch = build_batch(groups, tokenizer.pad_token_id)
        stats = policy_update(model, optimizer, train_batch, settings) if train_batch is not None else {}
        engine.weights_changed()
        record = {"step": step + 1, "reward": statistics.fmean(rewards),
                  **{k: v for k, v in episode_stats(flat, [r >= 1.0 for r in rewards]).items() if k != "n"},
                  "zero_variance_fraction": statistics.fmean(float(not g.has_signal()) for g in groups),
                  **stats, "rollout_s": t1 - t0, "train_s": time.perf_counter() - t1,
                  "step_s": time.perf_counter() - t0}
        metrics.write(record)
        say(f"GRPO step {step + 1}/{cfg.steps}: reward {record['reward']:.3f}, tool use "
            f"{record['tool_call_rate']:.2f}, {record['step_s']:.1f}s")
    lap("grpo")

    after = _evaluate_both(engine, tokenizer, template, task, heldout, cfg)
    say(f"after RL: accuracy with tool {after['with_tool']['accuracy']:.3f}, "
        f"without {after['without_tool']['accuracy']:.3f}")
    lap("eval_after")
    save_model_dir(model, model_config, tokenizer, out / "final")
    summary = {
        "task": task.name, "tool": cfg.tool, "config": asdict(cfg),
        "parameters": model_config.num_parameters(), "vocab_size": len(tokenizer),
        "sft": {"episodes": len(items), "steps": len(sft_records), "final_loss": sft_records[-1]["loss"],
                "copy_step": copy_step, "heldout_exact": next((r["heldout_exact"] for r in reversed(sft_records)
                                                               if "heldout_exact" in r), None),
                "tool_episodes": len(tool_examples), "direct_episodes": len(direct_examples)},
        "heldout_problems": len(heldout), "chance_accuracy": task.chance_accuracy,
        "before_rl": before, "after_rl": after,
        "accuracy": {mode: {"before_rl": before[mode]["accuracy"], "after_rl": after[mode]["accuracy"]}
                     for mode in ("with_tool", "without_tool")},
        "greedy_accuracy": {mode: {"before_rl": before[mode]["greedy_accuracy"],
                                   "after_rl": after[mode]["greedy_accuracy"]} for mode in ("with_tool", "without_tool")},
        "tool_helps_after_rl": after["with_tool"]["accuracy"] > after["without_tool"]["accuracy"],
        "seconds": {**seconds, "total": round(time.perf_counter() - started, 2)},
    }
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary
