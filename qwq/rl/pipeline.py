"""The QwQ recipe end to end: tokenizer -> cold-start SFT -> stage-1 GRPO (math + code, verifiers) -> reward model
-> stage-2 GRPO (reward model + rule verifiers) -> regression gate -> final model + report.

Every stage writes its output under the run directory and records itself in `state.json` (atomically); `resume`
skips finished stages and continues the running one from its last checkpoint, and because every random choice is
derived from (seed, stage, step) the resumed run ends with the same weights as an uninterrupted one.

    runs/<name>/config.json     the resolved config           runs/<name>/state.json   finished stages + results
    runs/<name>/tokenizer/      trained BPE (tiny preset)     runs/<name>/<stage>/     checkpoints, metrics.jsonl
    runs/<name>/final/          HF model + tokenizer (-m)     runs/<name>/report.md, summary.json, plots/
"""

from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Any, Callable

import torch

from qwq.rl.config import GRPOConfig, PipelineConfig, to_dict
from qwq.rl.data import build_task
from qwq.rl.evaluate import evaluate_heldout
from qwq.rl.metrics import set_threads
from qwq.rl.modeling import (new_model, rollout_processes, save_model_dir, tiny_config, train_tiny_tokenizer,
                              weights_hash)
from qwq.rl.rewards import TASK_REWARDS, build_reward_spec
from qwq.rl.rollout import TaskSlot, loop_breaker_available
from qwq.utils.atomic import atomic_write_text
from qwq.utils.errors import QwqError, UsageError
from qwq.utils.seeding import seed_everything

STAGES = ("tokenizer", "eval_init", "sft", "eval_cold", "stage1", "eval_stage1", "rm", "stage2", "eval_stage2")


class GateFailed(QwqError):
    """Stage 2 cost more stage-1 held-out accuracy than the gate allows (the report says where)."""


class RunState:
    """state.json: which stages are done, their results and the wall seconds spent in each."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {"done": {}, "seconds": {}}

    def done(self, stage: str) -> bool:
        return stage in self.data["done"]

    def result(self, stage: str) -> Any:
        return self.data["done"][stage]

    def finish(self, stage: str, result: Any, seconds: float) -> None:
        self.data["done"][stage] = result
        self.data["seconds"][stage] = self.data["seconds"].get(stage, 0.0) + seconds
        self.save()

    def add_seconds(self, stage: str, seconds: float) -> None:
        self.data["seconds"][stage] = self.data["seconds"].get(stage, 0.0) + seconds
        self.save()

    def save(self) -> None:
        atomic_write_text(self.path, json.dumps(self.data, indent=2) + "\n")


class Pipeline:
    def __init__(self, config: PipelineConfig, run_dir: str | Path, resume: bool = False,
                 progress_factory: Callable | None = None) -> None:
        self.config, self.run_dir, self.resume = config, Path(run_dir), resume
        self.progress_factory = progress_factory
        self.state = RunState(self.run_dir / "state.json")
        self.tokenizer = self.template = self.model = self.model_config = None
        self.tasks: dict[str, Any] = {}
        self._pairs: list | None = None  # the teacher's SFT traces (tokenizer corpus and SFT data)

    # ---- helpers -------------------------------------------------------------------------------------------------
    def _task(self, name: str, options: dict | None = None):
        if name not in self.tasks:
            self.tasks[name] = build_task(name, options)
        return self.tasks[name]

    def _engine(self, model, batch: int, processes: int = 1):
        from qwq.rl.modeling import make_engine

        cfg = self.config
        longest = max(cfg.stage1.max_new_tokens, cfg.stage2.max_new_tokens, cfg.eval.max_new_tokens) + 256
        return make_engine(model, self.tokenizer, self.model_config, self.template, batch, longest, processes)

    def _run_stage(self, stage: str, fn: Callable[[], Any], progress) -> Any:
        if self.state.done(stage):
            return self.state.result(stage)
        started = time.perf_counter()
        result = fn(progress)
        self.state.finish(stage, result, time.perf_counter() - started)
        return result

    # ---- stages --------------------------------------------------------------------------------------------------
    def _teacher_pairs(self) -> list:
        from qwq.rl.sft import teacher_pairs

        if self._pairs is None:
            self._pairs = teacher_pairs(self.config.sft, self.config.run.seed)
        return self._pairs

    def _stage_tokenizer(self, progress) -> dict:
        from qwq.rl.sft import prompt_text
        from qwq.tokenizer.chat import QWQ_TEMPLATE, ChatTemplate

        cfg = self.config
        template = ChatTemplate(QWQ_TEMPLATE)
        texts = [prompt_text(template, m) + c + "<|im_end|>\n" for m, c, _ in self._teacher_pairs()]
        for name in list(cfg.stage1.tasks) + list(cfg.stage2.tasks):
            task = self._task(name, cfg.stage1.task_options.get(name) or cfg.stage2.task_options.get(name))
            texts += [ex.question for ex in task.examples("train", 200, cfg.run.seed)]
        tokenizer = train_tiny_tokenizer(texts, cfg.tokenizer.vocab_size, cfg.tokenizer.min_frequency)
        tokenizer.save(self.run_dir / "tokenizer")
        return {"vocab_size": len(tokenizer), "corpus_texts": len(texts)}

    def _load_tokenizer(self) -> None:
        from qwq.tokenizer import Tokenizer
        from qwq.tokenizer.chat import ChatTemplate

        self.tokenizer = Tokenizer.from_hf_dir(self.run_dir / "tokenizer")
        self.template = ChatTemplate.for_tokenizer(self.tokenizer)

    def _build_model(self) -> None:
        cfg = self.config
        if cfg.model.init:
            raise UsageError("the pipeline trains the tiny preset from scratch; to start from a checkpoint use "
                             "`qwq train sft|grpo --config` with model.init")
        self.model_config = tiny_config(self.tokenizer, cfg.model.preset, cfg.model.overrides)
        self.model = new_model(self.model_config, cfg.run.seed)

    def _load_weights(self, directory: Path) -> None:
        from qwq.model.weights import load_state_dict

        state = load_state_dict(directory)
        own = self.model.state_dict()
        with torch.no_grad():
            for name, tensor in state.items():
                own[name].copy_(tensor)

    def _stage_sft(self, progress) -> dict:
        from qwq.rl.sft import build_sft_items, describe_items, train_sft

        cfg = self.config
        items = build_sft_items(cfg.sft, self.tokenizer, self.template, cfg.run.seed,
                                None if cfg.sft.data else self._teacher_pairs())
        records = train_sft(self.model, self.model_config, items, cfg.sft, cfg.run, self.run_dir / "sft",
                            self.tokenizer.pad_token_id, resume=self.resume, progress=progress)
        save_model_dir(self.model, self.model_config, self.tokenizer, self.run_dir / "sft" / "model")
        return {"data": describe_items(items), "steps": len(records), "final_loss": records[-1]["loss"]}

    def _counts(self, names) -> dict[str, int]:
        counts = self.config.eval.heldout
        unknown = [n for n in names if n not in counts]
        if unknown:
            raise UsageError(f"eval.heldout has no count for task(s) {', '.join(unknown)}")
        return {n: counts[n] for n in names}

    def _stage_eval(self, progress) -> dict:
        cfg = self.config
        names = list(dict.fromkeys(list(cfg.stage1.tasks) + list(cfg.stage2.tasks)))
        tasks = {n: self._task(n, cfg.stage1.task_options.get(n) or cfg.stage2.task_options.get(n)) for n in names}
        engine = self._engine(self.model, cfg.eval.batch_size)
        result = evaluate_heldout(engine, self.template, self.tokenizer, tasks, self._counts(names),
                                  cfg.eval.max_new_tokens)
        result["weights_sha256"] = weights_hash(self.model)
        return result

    def _slots(self, grpo: GRPOConfig) -> list[TaskSlot]:
        slots = []
        for name, weight in grpo.tasks.items():
            task = self._task(name, grpo.task_options.get(name))
            spec = grpo.rewards.get(name)
            reward = build_reward_spec(spec, TASK_REWARDS.get(task.kind)) if spec else None
            pool = None if task.procedural else task.pool("train")
            slots.append(TaskSlot(task, float(weight), reward, pool))
        return slots

    def _stage_grpo(self, stage: str, grpo: GRPOConfig, progress) -> dict:
        from qwq.rl.grpo import GRPOTrainer
        from qwq.rl.preflight import check_memory, estimate_memory

        cfg = self.config
        batch = grpo.prompts_per_step * grpo.group_size
        estimate = estimate_memory(self.model_config, cfg.model.dtype, self.model_config.num_parameters(),
                                   grpo.micro_batch, grpo.max_new_tokens + 128, batch, bool(grpo.kl_coef))
        check_memory(estimate, cfg.run.max_memory_gb, stage)
        loop_breaker = grpo.loop_breaker and loop_breaker_available()
        trainer = GRPOTrainer(self.model, self.model_config, self.tokenizer, self.template, self._slots(grpo), grpo,
                              cfg.run, stage, self.run_dir / stage,
                              lambda m: self._engine(m, batch, rollout_processes(cfg.run, m)),
                              loop_breaker=loop_breaker)
        records, extra = trainer.train(resume=self.resume, progress=progress)
        save_model_dir(self.model, self.model_config, self.tokenizer, self.run_dir / stage / "model")
        return {"steps": len(records), "probe": extra.get("probe"), "loop_breaker": loop_breaker,
                "final_reward": records[-1]["reward"] if records else None}

    def _stage_rm(self, progress) -> dict:
        from qwq.rl.reward_model import RewardModel, save_reward_model, task_pairs, train_reward_model

        cfg = self.config
        seed = cfg.run.seed
        pairs = task_pairs(cfg.rm.tasks, cfg.rm.task_options, "train", seed)
        share = {k: max(1, v * cfg.rm.heldout_pairs // max(1, sum(cfg.rm.tasks.values()))) for k, v in cfg.rm.tasks.items()}
        heldout = task_pairs(share, cfg.rm.task_options, "heldout", seed)
        backbone = copy.deepcopy(self._rm_backbone_source().model)
        rm = RewardModel(self.model_config, backbone)
        result = train_reward_model(rm, self.tokenizer, self.template, pairs, heldout, cfg.rm, seed,
                                    self.run_dir / "rm", progress)
        save_reward_model(rm, self.tokenizer, self.run_dir / "rm" / "model")
        return result

    def _rm_backbone_source(self):
        from qwq.model.weights import load_hf_checkpoint

        source = {"sft": self.run_dir / "sft" / "model", "stage1": self.run_dir / "stage1" / "model"}.get(
            self.config.rm.init_from)
        if source is None:
            from qwq.model.loading import load_model

            return load_model(self.config.rm.init_from).model
        return load_hf_checkpoint(source, dtype=torch.float32)[1]

    def _activate_rm(self) -> None:
        from qwq.rl.reward_model import RewardModelScorer, activate, load_reward_model

        rm, _ = load_reward_model(self.run_dir / "rm" / "model")
        activate(RewardModelScorer(rm, self.tokenizer, self.template, self.config.rm.max_length))

    # ---- the whole run -------------------------------------------------------------------------------------------
    def run(self, stop_after: str | None = None) -> dict:
        """Run (or resume) every stage; `stop_after` ends the run after that stage (no gate, no final model)."""
        cfg = self.config
        if stop_after is not None and stop_after not in STAGES:
            raise UsageError(f"unknown stage {stop_after!r}: expected one of {', '.join(STAGES)}")
        if self.state.data["done"] and not self.resume:
            raise UsageError(f"{self.run_dir} already holds a run: pass --resume to continue it, or another --out")
        if self.resume and self.state.data["done"]:
            self.state.data["resumed"] = True
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / "config.json", json.dumps(to_dict(cfg), indent=2) + "\n")
        set_threads(cfg.run.threads)
        seed_everything(cfg.run.seed)
        torch.manual_seed(cfg.run.seed)
        started = time.perf_counter()
        stages: list[tuple[str, Callable]] = [
            ("tokenizer", self._stage_tokenizer), ("eval_init", self._stage_eval), ("sft", self._stage_sft),
            ("eval_cold", self._stage_eval), ("stage1", lambda p: self._stage_grpo("stage1", cfg.stage1, p)),
            ("eval_stage1", self._stage_eval), ("rm", self._stage_rm),
            ("stage2", lambda p: self._stage_grpo("stage2", cfg.stage2, p)), ("eval_stage2", self._stage_eval)]
        progress = self.progress_factory() if self.progress_factory else contextlib.nullcontext()
        with progress as bar:
            bar = bar if self.progress_factory else None
            for name, fn in stages:
                if name in ("sft", "stage1", "stage2") and self.state.done(name):
                    self._load_weights(self.run_dir / name / "model")  # the stage's result, exactly
                if name == "stage2" and not self.state.done(name):
                    self._activate_rm()
                if name == "eval_init" and not cfg.eval.initial:
                    continue
                self._run_stage(name, fn, bar)
                if name == "tokenizer":
                    self._load_tokenizer()
                    self._build_model()
                if name == stop_after:
                    return {"stopped_after": name, "state": self.state.data}
        from qwq.rl.report import build_summary, write_report

        summary = build_summary(cfg, self.state.data, time.perf_counter() - started)
        if summary["gate"]["passed"]:
            save_model_dir(self.model, self.model_config, self.tokenizer, self.run_dir / "final")
        summary["weights_sha256"] = weights_hash(self.model)
        write_report(self.run_dir, cfg, summary, self.state.data)
        return summary
