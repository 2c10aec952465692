"""The single-trainer runs behind `qwq train sft|grpo|rm`: load (or build) the model, optionally wrap it with LoRA,
train, evaluate held-out accuracy before and after when the config asks for it, save <out>/final."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qwq.rl.config import TrainConfig
from qwq.rl.metrics import set_threads
from qwq.utils.errors import ConfigError
from qwq.utils.seeding import seed_everything


@dataclass
class ModelBundle:
    model: Any
    config: Any
    tokenizer: Any
    template: Any


def load_bundle(config: TrainConfig, kind: str, run_dir: Path) -> ModelBundle:
    from qwq.rl.modeling import new_model, tiny_config, train_tiny_tokenizer

    section = config.model
    if section.init:
        from qwq.model.loading import load_model

        dtype = getattr(torch, section.dtype, None)
        if not isinstance(dtype, torch.dtype):
            raise ConfigError(f"model.dtype: {section.dtype!r} is not a torch dtype (float32, bfloat16, float16)")
        loaded = load_model(section.init, dtype=dtype)
        return ModelBundle(loaded.model, loaded.config, loaded.tokenizer, loaded.chat_template)
    if kind != "sft":
        raise ConfigError(f"`qwq train {kind}` needs a starting model: set model.init (a checkpoint, run dir or name)")
    from qwq.rl.sft import prompt_text, teacher_pairs
    from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate

    texts = [prompt_text(ChatTemplate(QWQ_TEMPLATE), m) + c + "<|im_end|>\n"
             for m, c, _ in teacher_pairs(config.sft, config.run.seed)]
    tokenizer = train_tiny_tokenizer(texts, config.tokenizer.vocab_size, config.tokenizer.min_frequency)
    model_config = tiny_config(tokenizer, section.preset, section.overrides)
    template = ChatTemplate.for_tokenizer(tokenizer)
    return ModelBundle(new_model(model_config, config.run.seed), model_config, tokenizer, template)


def _maybe_lora(bundle: ModelBundle, lora, seed: int) -> bool:
    if not lora.enabled:
        return False
    from qwq.rl.lora import apply_lora

    apply_lora(bundle.model, lora.targets, lora.rank, lora.alpha, lora.dropout, seed)
    return True


def _finish(bundle: ModelBundle, run_dir: Path, used_lora: bool, config: TrainConfig, lora) -> Path:
    from qwq.rl.lora import merge_lora, save_adapter
    from qwq.rl.modeling import save_model_dir

    if used_lora:
        save_adapter(bundle.model, run_dir / "adapter", config.model.init, lora.rank, lora.alpha, lora.dropout,
                     lora.targets)
        merge_lora(bundle.model)
    return save_model_dir(bundle.model, bundle.config, bundle.tokenizer, run_dir / "final")


def _evaluate(bundle: ModelBundle, config: TrainConfig, task_names, batch: int) -> dict | None:
    from qwq.rl.data import build_task
    from qwq.rl.evaluate import evaluate_heldout, flat_accuracies
    from qwq.rl.modeling import make_engine

    counts = {n: config.eval.heldout[n] for n in task_names if n in config.eval.heldout}
    if not counts:
        return None
    options = {**config.sft.task_options, **config.grpo.task_options}
    tasks = {n: build_task(n, options.get(n)) for n in counts}
    engine = make_engine(bundle.model, bundle.tokenizer, bundle.config, bundle.template, batch,
                         config.eval.max_new_tokens + 1024)
    return flat_accuracies(evaluate_heldout(engine, bundle.template, bundle.tokenizer, tasks, counts,
                                            config.eval.max_new_tokens))


def run_training(kind: str, config: TrainConfig, run_dir: Path, resume: bool = False, progress: bool = True) -> dict:
    set_threads(config.run.threads)
    seed_everything(config.run.seed)
    torch.manual_seed(config.run.seed)
    run_dir = Path(run_dir)
    slots = _grpo_slots(config) if kind == "grpo" else None  # datasets are checked before any model is loaded
    if kind == "grpo" and config.model.init:
        _preflight_grpo(config)
    bundle = load_bundle(config, kind, run_dir)
    bar = None
    if progress and config.run.progress:
        from qwq.utils.progress import make_progress

        bar = make_progress()
    with bar if bar is not None else _Null():
        if kind == "sft":
            return _train_sft(bundle, config, run_dir, resume, bar)
        if kind == "grpo":
            return _train_grpo(bundle, config, run_dir, resume, bar, slots)
        return _train_rm(bundle, config, run_dir, bar)


def _grpo_slots(config: TrainConfig) -> list:
    from qwq.rl.data import build_task
    from qwq.rl.rewards import TASK_REWARDS, build_reward_spec
    from qwq.rl.rollout import TaskSlot

    slots = []
    for name, weight in config.grpo.tasks.items():
        task = build_task(name, config.grpo.task_options.get(name))
        spec = config.grpo.rewards.get(name)
        reward = build_reward_spec(spec, TASK_REWARDS.get(task.kind)) if spec else None
        slots.append(TaskSlot(task, float(weight), reward, None if task.procedural else task.pool("train")))
    return slots


def lora_parameter_count(model_config, lora) -> int:
    """Adapter parameters for `lora.targets` (rank x (in + out) per wrapped Linear), from the config alone."""
    h, d = model_config.hidden_size, model_config.dim_per_head
    q, kv, i = model_config.num_attention_heads * d, model_config.num_key_value_heads * d, model_config.intermediate_size
    shapes = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h), "gate_proj": (h, i),
              "up_proj": (h, i), "down_proj": (i, h)}
    per_layer = sum(lora.rank * (a + b) for name, (a, b) in shapes.items() if name in lora.targets)
    return per_layer * model_config.num_hidden_layers


def _preflight_grpo(config: TrainConfig) -> None:
    """Memory estimate from the model's config alone (no weights loaded yet)."""
    from qwq.model.loading import resolve_config
    from qwq.rl.preflight import check_memory, estimate_memory

    grpo = config.grpo
    model_config = resolve_config(config.model.init)
    trainable = lora_parameter_count(model_config, grpo.lora) if grpo.lora.enabled else model_config.num_parameters()
    estimate = estimate_memory(model_config, config.model.dtype, trainable, grpo.micro_batch,
                               grpo.max_new_tokens + 512, grpo.prompts_per_step * grpo.group_size,
                               bool(grpo.kl_coef) and not grpo.lora.enabled)
    check_memory(estimate, config.run.max_memory_gb, "grpo")


class _Null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def _train_sft(bundle: ModelBundle, config: TrainConfig, run_dir: Path, resume: bool, bar) -> dict:
    from qwq.rl.sft import build_sft_items, describe_items, train_sft

    lora = config.sft.lora
    used_lora = _maybe_lora(bundle, lora, config.run.seed)
    items = build_sft_items(config.sft, bundle.tokenizer, bundle.template, config.run.seed)
    pad = bundle.tokenizer.pad_token_id if bundle.tokenizer.pad_token_id is not None else bundle.tokenizer.eos_token_id
    from qwq.rl.distributed import init_data_parallel

    dp = init_data_parallel()
    records = train_sft(bundle.model, bundle.config, items, config.sft, config.run, run_dir / "sft", pad,
                        resume=resume, progress=bar if dp.rank == 0 else None, trainable_only=used_lora, dp=dp)
    if dp.rank != 0:
        return {"kind": "sft", "rank": dp.rank, "steps": len(records)}
    after = _evaluate(bundle, config, list(config.sft.tasks), config.eval.batch_size) if not config.sft.data else None
    final = _finish(bundle, run_dir, used_lora, config, lora)
    return {"kind": "sft", "data": describe_items(items), "steps": len(records), "final_loss": records[-1]["loss"],
            "heldout_after": after, "final": str(final)}


def _train_grpo(bundle: ModelBundle, config: TrainConfig, run_dir: Path, resume: bool, bar, slots) -> dict:
    from qwq.rl.grpo import GRPOTrainer
    from qwq.rl.modeling import make_engine, rollout_processes
    from qwq.rl.rollout import loop_breaker_available

    grpo = config.grpo
    lora = grpo.lora
    batch = grpo.prompts_per_step * grpo.group_size
    used_lora = _maybe_lora(bundle, lora, config.run.seed)
    before = _evaluate(bundle, config, list(grpo.tasks), batch)
    engine_factory = lambda m: make_engine(m, bundle.tokenizer, bundle.config, bundle.template, batch,  # noqa: E731
                                           grpo.max_new_tokens + 1024, rollout_processes(config.run, m))
    workers = config.distributed.rollout_workers
    if workers:
        from qwq.rl.distributed import RayRolloutEngine
        from qwq.rl.modeling import save_model_dir

        snapshot = copy.deepcopy(bundle.model)
        if used_lora:
            from qwq.rl.lora import merge_lora

            merge_lora(snapshot)
        save_model_dir(snapshot, bundle.config, bundle.tokenizer, run_dir / "rollout_model")
        del snapshot
        engine_factory = lambda m: RayRolloutEngine(  # noqa: E731
            m, str(run_dir / "rollout_model"), workers, config.distributed.ray_address or "local",
            config.distributed.worker_threads, batch, grpo.max_new_tokens + 1024)
    trainer = GRPOTrainer(bundle.model, bundle.config, bundle.tokenizer, bundle.template, slots, grpo, config.run,
                          "grpo", run_dir / "grpo", engine_factory,
                          loop_breaker=grpo.loop_breaker and loop_breaker_available(), trainable_only=used_lora)
    records, extra = trainer.train(resume=resume, progress=bar)
    after = _evaluate(bundle, config, list(grpo.tasks), batch)
    final = _finish(bundle, run_dir, used_lora, config, lora)
    return {"kind": "grpo", "steps": len(records), "probe": extra.get("probe"), "heldout_before": before,
            "heldout_after": after, "last_step": records[-1] if records else None, "final": str(final)}


def _train_rm(bundle: ModelBundle, config: TrainConfig, run_dir: Path, bar) -> dict:
    from qwq.rl.reward_model import RewardModel, save_reward_model, task_pairs, train_reward_model

    cfg = config.rm
    seed = config.run.seed
    pairs = task_pairs(cfg.tasks, cfg.task_options, "train", seed)
    total = max(1, sum(cfg.tasks.values()))
    heldout = task_pairs({k: max(1, v * cfg.heldout_pairs // total) for k, v in cfg.tasks.items()}, cfg.task_options,
                         "heldout", seed)
    rm = RewardModel(bundle.config, copy.deepcopy(bundle.model.model))
    result = train_reward_model(rm, bundle.tokenizer, bundle.template, pairs, heldout, cfg, seed, run_dir / "rm", bar)
    final = save_reward_model(rm, bundle.tokenizer, run_dir / "final")
    return {"kind": "rm", **result, "final": str(final)}
