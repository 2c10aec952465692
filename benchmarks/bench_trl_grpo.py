"""Our GRPO vs TRL's GRPOTrainer on the same tiny cold-start model, tasks, rewards and hyper-parameters: optimizer
steps per second and held-out accuracy gain side by side (target: >= 3x TRL's steps/s at equal or better gain).

    python benchmarks/bench_trl_grpo.py --run runs/tiny [--steps 20] [--threads 2]

`--run` is a pipeline run directory whose cold-start model (sft/model) is the common starting point (run
`qwq pipeline --stop-after eval_cold --out runs/tiny` first if needed). TRL is optional: pip install trl.
Both train on the stage-1 tasks (algebra, code) with the stage-1 settings of the tiny recipe: prompts per
step, group size, max new tokens, temperature, learning rate, DAPO loss with clip-higher, no KL. Held-out accuracy
is measured the same way for both (greedy, our evaluator). qwq trains under bf16 autocast where the CPU has bf16
(`run.autocast = "auto"`); TRL runs once with `bf16=False` and once with `bf16=True` (`--trl-precision`), and the
speed-up is taken against the faster of the two. TRL's gradient checkpointing (on by default) is turned off: the
model is tiny, and recomputing activations would only slow TRL down.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import sys
import time
from pathlib import Path

import torch


def _evaluate(model, model_config, tokenizer, template, tasks, counts, max_new_tokens):
    from qwq.rl.evaluate import evaluate_heldout
    from qwq.rl.modeling import make_engine

    engine = make_engine(model, tokenizer, model_config, template, 128, max_new_tokens + 256)
    return evaluate_heldout(engine, template, tokenizer, tasks, counts, max_new_tokens)["groups"]


def run_ours(model, model_config, tokenizer, template, cfg, run_cfg, slots, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the trainer and its rollout workers) per step; the sandbox runs in other
    processes for both trainers and is counted for neither."""
    from qwq.rl.grpo import GRPOTrainer
    from qwq.rl.modeling import make_engine, rollout_processes
    from qwq.rl.rewards import clear_reward_caches

    batch = cfg.prompts_per_step * cfg.group_size
    trainer = GRPOTrainer(model, model_config, tokenizer, template, slots, cfg, run_cfg, "bench", out,
                          lambda m: make_engine(m, tokenizer, model_config, template, batch, cfg.max_new_tokens + 256,
                                                rollout_processes(run_cfg, m)))
    clear_reward_caches()
    records, _ = trainer.train()
    # the steps' own wall and CPU time: the one-time learnability probe before step 1 (TRL has none) is left out
    return statistics.fmean(r["step_s"] for r in records), statistics.fmean(r["cpu_s"] for r in records)


def run_trl(model_dir: Path, cfg, slots, steps: int, seed: int, out: Path, threads: int, bf16: bool
            ) -> tuple[Path, float, float]:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from qwq.rl.data import Example
    from qwq.rl.rewards import clear_reward_caches

    by_name = {s.task.name: s.task for s in slots}
    rows = []
    per_task = cfg.prompts_per_step * steps * 2
    for slot in slots:
        for ex in slot.task.examples("train", per_task, seed, unique=False):
            rows.append({"prompt": slot.task.messages(ex), "task": ex.task, "key": ex.key,
                         "fields": json.dumps(ex.fields)})

    def reward(prompts, completions, task, key, fields, **_):
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        out_scores = [0.0] * len(texts)
        for name in set(task):
            idx = [i for i, t in enumerate(task) if t == name]
            examples = [Example(name, key[i], "", json.loads(fields[i])) for i in idx]
            scores = by_name[name].reward([texts[i] for i in idx], examples)
            for i, s in zip(idx, scores):
                out_scores[i] = s if s is not None else 0.0
        return out_scores

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = GRPOConfig(output_dir=str(out), max_steps=steps, per_device_train_batch_size=cfg.prompts_per_step *
                      cfg.group_size, num_generations=cfg.group_size, max_completion_length=cfg.max_new_tokens,
                      temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k, learning_rate=cfg.lr,
                      lr_scheduler_type="constant", warmup_steps=0, loss_type="dapo", beta=0.0, epsilon=cfg.clip_low,
                      epsilon_high=cfg.clip_high, mask_truncated_completions=cfg.overlong_filter, use_cpu=True,
                      report_to="none", save_strategy="no", logging_steps=1, seed=seed, bf16=bf16,
                      dataloader_num_workers=0, disable_dropout=True, gradient_checkpointing=False, adam_beta2=0.95, max_grad_norm=cfg.grad_clip,
                      weight_decay=0.0)
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=args, train_dataset=Dataset.from_list(rows),
                          processing_class=tokenizer)
    torch.set_num_threads(threads)
    clear_reward_caches()  # TRL calls the same cached code reward: it must not reuse the verdicts of our run
    started, cpu_started = time.perf_counter(), time.process_time()
    trainer.train()
    per_step = (time.perf_counter() - started) / steps
    cpu_per_step = (time.process_time() - cpu_started) / steps
    final = out / "final"
    trainer.save_model(str(final))
    tokenizer.save_pretrained(str(final))
    return final, per_step, cpu_per_step


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/tiny", help="pipeline run directory with sft/model")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/bench-trl")
    parser.add_argument("--trl-precision", choices=("fp32", "bf16", "both"), default="both",
                        help="TRL's `bf16` setting (CPU autocast, as qwq's `run.autocast` does); both: run TRL twice "
                             "and compare against the faster")
    args = parser.parse_args()
    try:
        import trl  # noqa: F401
    except ImportError:
        print("TRL is not installed (pip install trl): nothing to compare against")
        return 0
    from qwq.model.weights import load_hf_checkpoint
    from qwq.rl.config import PipelineConfig, RunConfig
    from qwq.rl.data import build_task
    from qwq.rl.rollout import TaskSlot
    from qwq.tokenizer import Tokenizer
    from qwq.tokenizer.chat import ChatTemplate

    torch.set_num_threads(args.threads)
    model_dir = Path(args.run) / "sft" / "model"
    if not (model_dir / "config.json").is_file():
        print(f"{model_dir}: no cold-start model; run `qwq pipeline --stop-after eval_cold --out {args.run}` first")
        return 2
    recipe = PipelineConfig()
    cfg = copy.deepcopy(recipe.stage1)
    cfg.steps, cfg.dynamic_sampling, cfg.probe_min_solved = args.steps, False, 0  # TRL has no dynamic sampling
    model_config, model = load_hf_checkpoint(model_dir, dtype=torch.float32)
    tokenizer = Tokenizer.from_hf_dir(model_dir)
    template = ChatTemplate.for_tokenizer(tokenizer)
    slots = [TaskSlot(build_task(name), float(w), None) for name, w in cfg.tasks.items()]
    tasks = {s.task.name: s.task for s in slots}
    counts = {n: recipe.eval.heldout[n] for n in tasks}
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)

    before = _evaluate(model, model_config, tokenizer, template, tasks, counts, recipe.eval.max_new_tokens)
    ours_s, ours_cpu = run_ours(model, model_config, tokenizer, template, cfg, RunConfig(seed=args.seed, threads=args.threads,
                                                                               checkpoint_every=0, progress=False),
                      slots, out / "ours")
    ours_after = _evaluate(model, model_config, tokenizer, template, tasks, counts, recipe.eval.max_new_tokens)
    runs = [("qwq", ours_s, ours_cpu, ours_after)]
    for precision in ("fp32", "bf16") if args.trl_precision == "both" else (args.trl_precision,):
        trl_dir, trl_s, trl_cpu = run_trl(model_dir, cfg, slots, args.steps, args.seed, out / f"trl-{precision}",
                                          args.threads, precision == "bf16")
        trl_config, trl_model = load_hf_checkpoint(trl_dir, dtype=torch.float32)
        trl_after = _evaluate(trl_model, trl_config, tokenizer, template, tasks, counts, recipe.eval.max_new_tokens)
        runs.append((f"TRL {precision}", trl_s, trl_cpu, trl_after))

    print(f"\n{args.steps} GRPO steps of {cfg.prompts_per_step} prompts x {cfg.group_size} samples, {args.threads} threads")
    print("| trainer | s/step | steps/s | CPU s/step | " + " | ".join(f"{g} gain" for g in before) + " |")
    print("|---|---|---|---|" + "---|" * len(before))
    for name, per_step, cpu, after in runs:
        gains = " | ".join(f"{100 * before[g]:.1f} -> {100 * after[g]:.1f} ({100 * (after[g] - before[g]):+.1f})"
                           for g in before)
        print(f"| {name} | {per_step:.2f} | {1 / per_step:.3f} | {cpu:.2f} | {gains} |")
    fastest = min(runs[1:], key=lambda run: run[1])  # TRL at its better precision setting
    gain_ours = statistics.fmean(ours_after[g] - before[g] for g in before)
    gain_trl = statistics.fmean(fastest[3][g] - before[g] for g in before)
    print(f"\nspeed-up vs the faster TRL ({fastest[0]}): {fastest[1] / ours_s:.1f}x wall, {fastest[2] / ours_cpu:.1f}x "
          f"CPU (target >= 3x); mean gain qwq {100 * gain_ours:+.1f} vs TRL {100 * gain_trl:+.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
