"""Run benchmarks against a backend: generate the missing samples, score them through qwq.verify, summarize.

    summary = run_eval([build_task("aime24")], backend, SamplingConfig(), out_dir="runs/eval", n=16)

Every (task, thinking budget) pair is one *run*. Samples of all runs with the same budget go to the backend in
one call, so a local engine keeps its batch full and an endpoint its connections busy. Each sample has its own
seed, derived from the base seed, the task, the item and the sample index: reruns and resumed runs ask for the
same samples.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field, replace
from typing import Sequence

from qwq.eval import metrics
from qwq.eval.backends import Backend, Completion, Request, SamplingConfig
from qwq.eval.results import ResultStore, digest, sample_record
from qwq.eval.tasks.base import EvalItem, EvalTask
from qwq.utils.errors import UsageError


def sample_seed(base: int, task: str, item_id: str, sample: int) -> int:
    data = f"{base}/{task}/{item_id}/{sample}".encode("utf-8")
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), "big") >> 1


@dataclass
class TaskRun:
    task: EvalTask
    n: int
    budget: int | None = None
    items: list[EvalItem] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    generated: int = 0

    @property
    def name(self) -> str:
        return self.task.name if self.budget is None else f"{self.task.name}@think{self.budget}"


@dataclass
class EvalOptions:
    n: int | None = None  # samples per problem (None: each task's default from the protocol)
    limit: int | None = None  # first K problems of each task
    budgets: Sequence[int | None] = (None,)  # thinking budgets to sweep (None: unlimited)
    rescore: bool = False
    overwrite: bool = False
    price_in: float = metrics.DEFAULT_PRICE_IN
    price_out: float = metrics.DEFAULT_PRICE_OUT
    progress: bool | None = None  # None: when stderr is a terminal
    report: bool = True


def _prompt_digest(item: EvalItem) -> str:
    return digest(item.messages)


def plan(tasks: Sequence[EvalTask], options: EvalOptions) -> list[TaskRun]:
    if options.n is not None and options.n < 1:
        raise UsageError(f"--n must be >= 1, got {options.n}")
    if options.limit is not None and options.limit < 1:
        raise UsageError(f"--limit must be >= 1, got {options.limit}")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise UsageError(f"a task is listed twice: {', '.join(names)}")
    runs = []
    for task in tasks:
        items = task.items(options.limit)  # raises TaskUnavailable with the reason before anything is generated
        for budget in options.budgets:
            runs.append(TaskRun(task, options.n or task.default_n, budget, items))
    return runs


def _pending(run: TaskRun, store: ResultStore,
             base_seed: int = 0) -> tuple[list[dict], list[tuple[Request, EvalItem, int, str]]]:
    """Stored samples still valid for this run, and the requests for the missing ones."""
    wanted = {item.id: (item, _prompt_digest(item)) for item in run.items}
    kept: dict[tuple[str, int], dict] = {}
    for record in store.load_samples(run.name):
        key = (str(record.get("item_id")), int(record.get("sample", -1)))
        item_digest = wanted.get(key[0])
        if item_digest and record.get("prompt_sha") == item_digest[1] and 0 <= key[1] < run.n:
            kept[key] = record
    missing = []
    for item in run.items:
        prompt_sha = wanted[item.id][1]
        for j in range(run.n):
            if (item.id, j) not in kept:
                seed = sample_seed(base_seed, run.task.name, item.id, j)
                request = Request(f"{run.name}/{item.id}/{j}", item.messages, seed, run.task.name, item.id, j)
                missing.append((request, item, j, prompt_sha))
    return list(kept.values()), missing


def generate(runs: Sequence[TaskRun], backend: Backend, sampling: SamplingConfig, store: ResultStore,
             progress: bool | None = None) -> dict[int | None, float]:
    """Generate every missing sample; returns the wall seconds spent per thinking budget."""
    from qwq.utils.progress import make_progress

    walls: dict[int | None, float] = {}
    by_budget: dict[int | None, list[TaskRun]] = {}
    for run in runs:
        by_budget.setdefault(run.budget, []).append(run)
    with make_progress(disable=None if progress is None else not progress) as bars:
        for budget, group in by_budget.items():
            lookup: dict[str, tuple[TaskRun, EvalItem, int, str]] = {}
            requests: list[Request] = []
            bar_of: dict[str, int] = {}
            for run in group:
                kept, missing = _pending(run, store, sampling.seed)
                bar_of[run.name] = bars.add_task(run.name, total=len(kept) + len(missing), completed=len(kept))
                for request, item, j, prompt_sha in missing:
                    lookup[request.key] = (run, item, j, prompt_sha)
                    requests.append(request)

            def on_result(done: Completion) -> None:
                run, item, j, prompt_sha = lookup[done.key]
                if done.error:
                    run.failures.append(f"{done.key}: {done.error}")
                else:
                    store.append_samples(run.name, [sample_record(run.task.name, item, j, done, prompt_sha)])
                    run.generated += 1
                bars.advance(bar_of[run.name])

            start = time.perf_counter()
            if requests:
                backend.generate(requests, replace(sampling, thinking_budget=budget), on_result)
            walls[budget] = time.perf_counter() - start
    return walls


def score_run(run: TaskRun, store: ResultStore, rescore: bool = False) -> list[dict]:
    """Score every stored sample of the run (reusing earlier scores of unchanged samples) and store them."""
    kept, _ = _pending(run, store)
    items = {item.id: item for item in run.items}
    order = {item_id: index for index, item_id in enumerate(items)}
    previous = {} if rescore else {(r["item_id"], r["sample"], r.get("text_sha")): r for r in store.load_scored(run.name)}
    records = sorted(kept, key=lambda r: (order[r["item_id"]], r["sample"]))
    todo = [r for r in records if (r["item_id"], r["sample"], r.get("text_sha")) not in previous]
    if todo:
        scores = run.task.score([items[r["item_id"]] for r in todo], [r["text"] for r in todo],
                                [bool(r["starts_in_reasoning"]) for r in todo])
        for record, score in zip(todo, scores, strict=True):
            record.update(correct=score.correct, answer_key=score.answer_key, reason=score.reason, extra=score.extra)
    scored = []
    for record in records:
        old = previous.get((record["item_id"], record["sample"], record.get("text_sha")))
        if old is not None:
            record = {**record, **{k: old.get(k) for k in ("correct", "answer_key", "reason", "extra")}}
        scored.append(record)
    store.write_scored(run.name, scored)
    return scored


def summarize_run(run: TaskRun, records: list[dict], options: EvalOptions) -> dict:
    summary = metrics.summarize(records, price_in=options.price_in, price_out=options.price_out)
    summary.update(task=run.task.name, kind=run.task.kind, thinking_budget=run.budget, n=run.n,
                   complete=len(records) == run.n * len(run.items), failed_samples=len(run.failures),
                   mean_latency_s=metrics.mean([r["latency_s"] for r in records if r.get("latency_s") is not None]))
    summary.update(run.task.extra_metrics(records))
    return summary


def run_eval(tasks: Sequence[EvalTask], backend: Backend, sampling: SamplingConfig, out_dir,
             options: EvalOptions | None = None) -> dict:
    options = options or EvalOptions()
    store = ResultStore(out_dir)
    runs = plan(tasks, options)
    settings = {"backend": backend.describe(), "sampling": {k: v for k, v in sampling.to_dict().items()
                                                             if k != "thinking_budget"}}
    store.check_run(settings, overwrite=options.overwrite)
    start = time.perf_counter()
    walls = generate(runs, backend, sampling, store, options.progress)
    summaries, failures = {}, []
    for run in runs:
        records = score_run(run, store, options.rescore)
        summaries[run.name] = summarize_run(run, records, options)
        summaries[run.name]["generation_wall_seconds"] = walls.get(run.budget)
        failures.extend(run.failures)
    summary = {**settings, "tasks": summaries, "wall_seconds": time.perf_counter() - start,
               "failed_samples": len(failures), "failures": failures[:20],
               "options": {"n": options.n, "limit": options.limit, "budgets": list(options.budgets)}}
    store.write_summary(summary)
    if options.report:
        from qwq.eval.report import write_report

        write_report(summary, store.root)
    return summary
