"""The report of an eval run: report.md with the tables, and PNG charts (accuracy per task with 95% intervals,
mean reasoning / answer tokens per task, accuracy against the thinking budget when budgets were swept).

Charts are drawn with matplotlib's object API on an Agg canvas, so nothing touches pyplot's global state.
Only numbers and ids appear: never prompts or outputs (GPQA's questions must never be published).
"""

from __future__ import annotations

from pathlib import Path

from qwq.utils.atomic import atomic_write_bytes, atomic_write_text

# QwQ-32B's published scores (model card / blog), for the comparison column.
PUBLISHED = {"aime24": 79.5, "aime25": 69.5, "livecodebench": 63.4, "ifeval": 83.9}


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _num(value, digits: int = 0) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _best_k(table: dict) -> tuple[str, float | None]:
    if not table:
        return "", None
    k = max(table, key=int)
    return k, table[k]


def markdown(summary: dict) -> str:
    backend = summary.get("backend", {})
    sampling = summary.get("sampling", {})
    lines = ["# Evaluation report", ""]
    who = backend.get("model") or backend.get("url") or "?"
    lines.append(f"Model: `{who}` ({backend.get('backend', '?')} backend"
                 + (f", {backend['quant']}" if backend.get("quant") else "") + ")  ")
    lines.append("Sampling: " + ", ".join(f"{k}={sampling[k]}" for k in ("temperature", "top_p", "top_k", "min_p",
                                                                           "max_tokens", "seed") if k in sampling)
                 + "  ")
    lines.append(f"Wall time: {_num(summary.get('wall_seconds'), 1)} s")
    lines += ["", "| run | n | problems | pass@1 % | 95% CI | pass@k % | maj@k % | reasoning tok | answer tok | "
              "truncated % | looped % | mixed lang % | cost $ | published % |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in summary.get("tasks", {}).items():
        ci = s.get("accuracy", {}).get("ci95")
        ci_text = f"{_pct(ci[0])}–{_pct(ci[1])}" if ci else "-"
        k, pk = _best_k(s.get("pass@k", {}))
        mk, mj = _best_k(s.get("maj@k", {}))
        tokens = s.get("tokens", {})
        published = PUBLISHED.get(name)
        lines.append(
            f"| {name} | {s.get('n')} | {s.get('problems')} | {_pct(s.get('pass@1'))} | {ci_text} | "
            f"{(_pct(pk) + f' (k={k})') if k else '-'} | {(_pct(mj) + f' (k={mk})') if mk else '-'} | "
            f"{_num(tokens.get('mean_reasoning_tokens'))} | {_num(tokens.get('mean_answer_tokens'))} | "
            f"{_pct(s.get('truncation_rate'))} | {_pct(s.get('loop_rate'))} | {_pct(s.get('language_mixing_rate'))} | "
            f"{_num(s.get('cost_usd'), 4)} | {published if published is not None else '-'} |")
    extras = {name: s for name, s in summary.get("tasks", {}).items() if "prompt_strict" in s}
    if extras:
        lines += ["", "## Instruction following", "", "| run | prompt strict % | prompt loose % | "
                  "instruction strict % | instruction loose % |", "|---|---|---|---|---|"]
        for name, s in extras.items():
            lines.append(f"| {name} | {_pct(s['prompt_strict'])} | {_pct(s['prompt_loose'])} | "
                         f"{_pct(s['instruction_strict'])} | {_pct(s['instruction_loose'])} |")
    incomplete = [name for name, s in summary.get("tasks", {}).items() if not s.get("complete", True)]
    if summary.get("failed_samples") or incomplete:
        lines += ["", f"**Incomplete**: {summary.get('failed_samples', 0)} samples failed"
                  + (f" ({', '.join(incomplete)})" if incomplete else "") + "; rerun the same command to retry them."]
    lines += ["", "pass@1 is the mean accuracy over the n samples of each problem; the 95% interval treats problems "
              "as the sampled unit. pass@k is the unbiased estimator, maj@k a majority vote over extracted answers. "
              "Token counts are per sample; cost is at "
              f"${summary.get('price_in', 0.66)}/${summary.get('price_out', 1.00)} per 1M input/output tokens.", ""]
    for chart in summary.get("charts", []):
        lines.append(f"![{Path(chart).stem}]({chart})")
    return "\n".join(lines) + "\n"


def _figure(width: float = 7.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: Path) -> None:
    import io

    buffer = io.BytesIO()
    figure.tight_layout()
    figure.savefig(buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())


def accuracy_chart(tasks: dict, path: Path) -> None:
    names = list(tasks)
    values = [100 * (tasks[n].get("pass@1") or 0) for n in names]
    errors = [[0] * len(names), [0] * len(names)]
    for i, n in enumerate(names):
        ci = tasks[n].get("accuracy", {}).get("ci95")
        if ci:
            errors[0][i] = max(0.0, values[i] - 100 * ci[0])
            errors[1][i] = max(0.0, 100 * ci[1] - values[i])
    figure = _figure(max(5.0, 1.0 + 0.9 * len(names)))
    axes = figure.add_subplot()
    axes.bar(names, values, yerr=errors, capsize=4, color="#4C72B0")
    axes.set_ylabel("pass@1 (%)")
    axes.set_ylim(0, 100)
    axes.set_title("Accuracy per task (95% interval)")
    axes.tick_params(axis="x", rotation=30)
    _save(figure, path)


def tokens_chart(tasks: dict, path: Path) -> None:
    names = list(tasks)
    reasoning = [tasks[n].get("tokens", {}).get("mean_reasoning_tokens") or 0 for n in names]
    answer = [tasks[n].get("tokens", {}).get("mean_answer_tokens") or 0 for n in names]
    figure = _figure(max(5.0, 1.0 + 0.9 * len(names)))
    axes = figure.add_subplot()
    axes.bar(names, reasoning, label="reasoning", color="#DD8452")
    axes.bar(names, answer, bottom=reasoning, label="answer", color="#55A868")
    axes.set_ylabel("mean tokens per sample")
    axes.set_title("Tokens per task")
    axes.legend()
    axes.tick_params(axis="x", rotation=30)
    _save(figure, path)


def budget_chart(tasks: dict, path: Path) -> bool:
    """Accuracy against the thinking budget, one line per task swept over at least two budgets."""
    series: dict[str, list[tuple[int, float]]] = {}
    unlimited: dict[str, float] = {}
    for s in tasks.values():
        if s.get("pass@1") is None:
            continue
        if s.get("thinking_budget") is None:
            unlimited[s["task"]] = 100 * s["pass@1"]
        else:
            series.setdefault(s["task"], []).append((int(s["thinking_budget"]), 100 * s["pass@1"]))
    series = {t: sorted(points) for t, points in series.items() if len(points) + (t in unlimited) >= 2}
    if not series:
        return False
    figure = _figure()
    axes = figure.add_subplot()
    for task, points in series.items():
        line = axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=task)[0]
        if task in unlimited:
            axes.axhline(unlimited[task], linestyle="--", color=line.get_color(), alpha=0.6)
    axes.set_xlabel("thinking budget (tokens; dashed: unlimited)")
    axes.set_ylabel("pass@1 (%)")
    axes.set_title("Accuracy vs thinking budget")
    if all(p[0] > 0 for points in series.values() for p in points):
        axes.set_xscale("log", base=2)
    axes.legend()
    _save(figure, path)
    return True


def write_report(summary: dict, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    charts_dir = out / "charts"
    tasks = summary.get("tasks", {})
    charts = []
    if tasks:
        charts_dir.mkdir(parents=True, exist_ok=True)
        accuracy_chart(tasks, charts_dir / "accuracy.png")
        tokens_chart(tasks, charts_dir / "tokens.png")
        charts += ["charts/accuracy.png", "charts/tokens.png"]
        if budget_chart(tasks, charts_dir / "budget.png"):
            charts.append("charts/budget.png")
    first = next(iter(tasks.values()), {})
    price = first.get("price_per_1m", {})
    text = markdown({**summary, "charts": charts, "price_in": price.get("input", 0.66),
                     "price_out": price.get("output", 1.00)})
    path = out / "report.md"
    atomic_write_text(path, text)
    return path
