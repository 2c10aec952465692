"""Evaluation: the QwQ benchmarks with the official protocol, against the local engine or any OpenAI-compatible
endpoint, scored through qwq.verify (the same code RL rewards use).

    from qwq.eval import build_task, run_eval, EvalOptions, SamplingConfig
    summary = run_eval([build_task("aime24")], backend, SamplingConfig(), "runs/eval", EvalOptions(n=16))

Modules: tasks/ (one file per benchmark), harness.py (generate missing samples, score, summarize), backends.py
(requests, completions, the scripted backend), local.py (qwq.engine), endpoint.py (OpenAI-compatible HTTP),
metrics.py (pass@k, maj@k, intervals, tokens, cost), signals.py (loops, language mixing), results.py
(resumable JSONL storage), report.py (markdown + charts), cli.py (`qwq eval`).
"""

from qwq.eval.backends import Backend, Completion, Request, SamplingConfig, ScriptedBackend
from qwq.eval.harness import EvalOptions, run_eval
from qwq.eval.tasks import BENCHMARKS, EvalItem, EvalTask, SampleScore, TaskError, TaskUnavailable, build_task

__all__ = ["BENCHMARKS", "Backend", "Completion", "EvalItem", "EvalOptions", "EvalTask", "Request",
           "SampleScore", "SamplingConfig", "ScriptedBackend", "TaskError", "TaskUnavailable", "build_task",
           "run_eval"]
