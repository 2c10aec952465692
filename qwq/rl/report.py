"""The pipeline's report: summary.json (the schema below), report.md, PNG plots, and the table printed at the end.

summary.json:
    {"stages": [{"name", "heldout_before": {task: acc}, "heldout_after": {task: acc}, "seconds", ...}, ...],
     "gate": {"passed": bool, "max_drop", "drops": {group: before - after}}, "seconds": float, ...}
Accuracies are in 0..1. Task keys are the task names plus the pooled group `math` (arith + algebra).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qwq.rl.evaluate import flat_accuracies
from qwq.rl.metrics import read_metrics
from qwq.utils.atomic import atomic_write_text

STAGE1_GROUPS = ("math", "code")


def _acc(state: dict, key: str) -> dict:
    return flat_accuracies(state["done"][key]) if key in state["done"] else {}


def gate_result(config, before: dict, after: dict) -> dict:
    groups = [g for g in STAGE1_GROUPS if g in before and g in after]
    drops = {g: round(before[g] - after[g], 4) for g in groups}
    failed = [g for g, d in drops.items() if d > config.gate.max_drop + 1e-9]
    return {"passed": not failed and bool(groups), "max_drop": config.gate.max_drop, "drops": drops,
            "failed": failed, "checked": groups}


def build_summary(config, state: dict, wall_seconds: float) -> dict:
    seconds = state.get("seconds", {})
    init, cold = _acc(state, "eval_init"), _acc(state, "eval_cold")
    s1, s2 = _acc(state, "eval_stage1"), _acc(state, "eval_stage2")
    done = state["done"]
    stages = [
        {"name": "cold_start", "heldout_before": init, "heldout_after": cold, "seconds": seconds.get("sft", 0.0),
         "details": done.get("sft")},
        {"name": "stage1", "heldout_before": cold, "heldout_after": s1, "seconds": seconds.get("stage1", 0.0),
         "details": done.get("stage1"),
         "gains": {g: round(s1.get(g, 0) - cold.get(g, 0), 4) for g in STAGE1_GROUPS if g in s1}},
        {"name": "reward_model", "heldout_before": {}, "heldout_after": {}, "seconds": seconds.get("rm", 0.0),
         "details": done.get("rm")},
        {"name": "stage2", "heldout_before": s1, "heldout_after": s2, "seconds": seconds.get("stage2", 0.0),
         "details": done.get("stage2"),
         "gains": {g: round(s2.get(g, 0) - s1.get(g, 0), 4) for g in ("instruct",) + STAGE1_GROUPS if g in s2}},
    ]
    total = sum(seconds.values())
    gate = gate_result(config, s1, s2)
    targets = {f"stage1_{g}_gain_at_least_15_points": round(s1.get(g, 0) - cold.get(g, 0), 4) >= 0.15
               for g in STAGE1_GROUPS}
    targets["stage2_instruct_gain_positive"] = s2.get("instruct", 0) > s1.get("instruct", 0)
    targets["gate_passed"] = gate["passed"]
    return {
        "stages": stages,
        "gate": gate,
        "targets": targets,
        "seconds": round(max(total, wall_seconds) if not state.get("resumed") else total, 2),
        "stage_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "seed": config.run.seed, "threads": config.run.threads, "name": config.run.name,
    }


# ---- plots -------------------------------------------------------------------------------------------------------
def _plot_stage(path: Path, records: list[dict], title: str) -> bool:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not records:
        return False
    steps = [r["step"] for r in records]
    keys = sorted({k for r in records for k in r if k.startswith("accuracy/") or k.startswith("reward/")
                   and k.count("/") == 1})
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    axes[0].plot(steps, [r.get("reward") for r in records], label="reward (mean)", linewidth=2)
    axes[0].plot(steps, [r.get("accuracy") for r in records], label="accuracy (mean)", linewidth=2)
    for key in keys:
        axes[0].plot(steps, [r.get(key) for r in records], label=key, linewidth=1, alpha=0.7)
    axes[0].set_xlabel("step")
    axes[0].set_title(f"{title}: reward and accuracy per step")
    axes[0].legend(fontsize=7)
    axes[1].plot(steps, [r.get("response_length") for r in records], label="response length (tokens)")
    axes[1].set_xlabel("step")
    ax2 = axes[1].twinx()
    ax2.plot(steps, [r.get("zero_variance_fraction") for r in records], color="tab:red", alpha=0.6,
             label="zero-variance groups")
    ax2.plot(steps, [r.get("entropy") for r in records], color="tab:green", alpha=0.6, label="entropy")
    axes[1].set_title(f"{title}: lengths, zero-variance fraction, entropy")
    axes[1].legend(loc="upper left", fontsize=7)
    ax2.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def _plot_heldout(path: Path, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    stages = [s for s in summary["stages"] if s["heldout_after"]]
    points = ["init"] + [s["name"] for s in stages]
    values = [stages[0]["heldout_before"]] + [s["heldout_after"] for s in stages]
    keys = sorted({k for v in values for k in v})
    fig, ax = plt.subplots(figsize=(9, 3.8))
    width = 0.8 / max(1, len(points))
    for i, (point, accs) in enumerate(zip(points, values)):
        ax.bar([k + i * width for k in range(len(keys))], [accs.get(key, 0) for key in keys], width, label=point)
    ax.set_xticks([k + 0.4 - width / 2 for k in range(len(keys))], keys)
    ax.set_ylim(0, 1)
    ax.set_ylabel("held-out accuracy")
    ax.set_title("held-out accuracy after each stage")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_losses(path: Path, sft: list[dict], rm: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    axes[0].plot([r["step"] for r in sft], [r["loss"] for r in sft])
    axes[0].set_title("cold-start SFT loss")
    axes[0].set_xlabel("step")
    axes[1].plot([r["step"] for r in rm], [r["loss"] for r in rm], label="BT loss")
    axes[1].plot([r["step"] for r in rm], [r["pair_accuracy"] for r in rm], label="batch pair accuracy")
    axes[1].set_title("reward model")
    axes[1].set_xlabel("step")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


# ---- markdown ----------------------------------------------------------------------------------------------------
def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def markdown(summary: dict, state: dict) -> str:
    lines = [f"# qwq pipeline report: {summary['name']}", "",
             f"seed {summary['seed']}, {summary['threads']} threads, {summary['seconds']:.0f} s in all "
             f"(stage seconds: {', '.join(f'{k} {v:.0f}' for k, v in summary['stage_seconds'].items())})", "",
             "## Held-out accuracy (%)", ""]
    keys = sorted({k for s in summary["stages"] for part in ("heldout_before", "heldout_after") for k in s[part]})
    lines.append("| stage | " + " | ".join(f"{k} before | {k} after" for k in keys) + " |")
    lines.append("|---|" + "---|---|" * len(keys))
    for stage in summary["stages"]:
        if not stage["heldout_after"]:
            continue
        cells = [f"{_pct(stage['heldout_before'].get(k))} | {_pct(stage['heldout_after'].get(k))}" for k in keys]
        lines.append(f"| {stage['name']} | " + " | ".join(cells) + " |")
    gate = summary["gate"]
    lines += ["", "## Targets", ""] + [f"- {name.replace('_', ' ')}: {'yes' if ok else 'NO'}"
                                       for name, ok in summary.get("targets", {}).items()]
    lines += ["", "## Regression gate", "",
              f"{'PASSED' if gate['passed'] else 'FAILED'}: stage-1 held-out drop during stage 2 "
              f"(allowed {100 * gate['max_drop']:.1f} points): " +
              ", ".join(f"{g} {100 * d:+.1f}" for g, d in gate["drops"].items()), ""]
    probe = (state["done"].get("stage1") or {}).get("probe")
    if probe:
        lines += ["## Learnability probe (stage 1)", "",
                  f"{probe['solved_prompts']} of {probe['prompts']} probe problems solved at least once "
                  f"({probe['correct_samples']} of {probe['samples']} samples), {probe['signal_groups']} groups "
                  f"with reward variance.", ""]
    rm = state["done"].get("rm")
    if rm:
        lines += ["## Reward model", "",
                  f"{rm['pairs']} training pairs, held-out pair accuracy {_pct(rm['heldout_pair_accuracy_before'])}"
                  f"% -> {_pct(rm['heldout_pair_accuracy'])}% on {rm['heldout_pairs']} pairs.", ""]
    lines += ["## Plots", "", "![held-out](plots/heldout.png)", "", "![stage 1](plots/stage1.png)", "",
              "![stage 2](plots/stage2.png)", "", "![losses](plots/losses.png)", ""]
    return "\n".join(lines)


def write_report(run_dir: Path, config, summary: dict, state: dict) -> None:
    run_dir = Path(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    _plot_stage(plots / "stage1.png", read_metrics(run_dir / "stage1" / "metrics.jsonl"), "stage 1")
    _plot_stage(plots / "stage2.png", read_metrics(run_dir / "stage2" / "metrics.jsonl"), "stage 2")
    _plot_heldout(plots / "heldout.png", summary)
    _plot_losses(plots / "losses.png", read_metrics(run_dir / "sft" / "metrics.jsonl"),
                 read_metrics(run_dir / "rm" / "metrics.jsonl"))
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(run_dir / "report.md", markdown(summary, state))


def print_table(summary: dict, console=None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    keys = sorted({k for s in summary["stages"] for k in s["heldout_after"]})
    table = Table(title=f"qwq pipeline: held-out accuracy (%), {summary['seconds']:.0f} s")
    table.add_column("stage")
    for key in keys:
        table.add_column(key, justify="right")
    table.add_column("seconds", justify="right")
    for stage in summary["stages"]:
        if not stage["heldout_after"]:
            table.add_row(stage["name"], *["" for _ in keys], f"{stage['seconds']:.0f}")
            continue
        table.add_row(stage["name"], *[f"{_pct(stage['heldout_before'].get(k))} -> {_pct(stage['heldout_after'].get(k))}"
                                       for k in keys], f"{stage['seconds']:.0f}")
    console.print(table)
    gate = summary["gate"]
    console.print(f"gate: {'[green]passed[/green]' if gate['passed'] else '[red]FAILED[/red]'} "
                  f"(drops: {', '.join(f'{g} {100 * d:+.1f}' for g, d in gate['drops'].items())}; "
                  f"allowed {100 * gate['max_drop']:.1f})")
