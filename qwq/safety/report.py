"""Red-team report: a markdown table per arm (guard off / on, per split and category) and a bar chart."""

from __future__ import annotations

import json
from pathlib import Path

from qwq.utils.atomic import atomic_write_text


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(arms: dict[str, dict], title: str = "Red-team report", notes: str = "") -> str:
    """`arms` maps an arm name (e.g. 'guard off', 'guard on') to a `redteam.summarize` result."""
    lines = [f"# {title}", ""]
    if notes:
        lines += [notes, ""]
    lines += ["| arm | split | safe-response (harmful) | over-refusal (benign+borderline) | benign | borderline | "
              "n harmful | n other |", "|---|---|---|---|---|---|---|---|"]
    for arm, s in arms.items():
        for split, r in [("all", s["overall"])] + list(s["by_split"].items()):
            lines.append(f"| {arm} | {split} | {_pct(r['safe_response_rate'])} | {_pct(r['over_refusal_rate'])} | "
                         f"{_pct(r['over_refusal_benign'])} | {_pct(r['over_refusal_borderline'])} | "
                         f"{r['n_harmful']} | {r['n_not_harmful']} |")
    lines += ["", "## Per category", "", "| category | " + " | ".join(
        f"{a}: safe / over-refusal" for a in arms) + " |", "|---|" + "---|" * len(arms)]
    cats = sorted({c for s in arms.values() for c in s["by_category"]})
    for c in cats:
        cells = []
        for s in arms.values():
            r = s["by_category"].get(c)
            cells.append("-" if r is None else f"{_pct(r['safe_response_rate'])} / {_pct(r['over_refusal_rate'])}")
        lines.append(f"| {c} | " + " | ".join(cells) + " |")
    lines += ["", "## Per attack style", "", "| style | " + " | ".join(f"{a}: safe / over-refusal" for a in arms)
              + " |", "|---|" + "---|" * len(arms)]
    styles = sorted({st for s in arms.values() for st in s["by_style"]})
    for st in styles:
        cells = []
        for s in arms.values():
            r = s["by_style"].get(st)
            cells.append("-" if r is None else f"{_pct(r['safe_response_rate'])} / {_pct(r['over_refusal_rate'])}")
        lines.append(f"| {st} | " + " | ".join(cells) + " |")
    lines += ["", "## Guard latency per request (input + output checks)", "", "| arm | mean | p50 | p95 |",
              "|---|---|---|---|"]
    for arm, s in arms.items():
        lat = s.get("guard_latency") or {}
        lines.append(f"| {arm} | {lat.get('mean_ms', '-')} ms | {lat.get('p50_ms', '-')} ms | "
                     f"{lat.get('p95_ms', '-')} ms |")
    return "\n".join(lines) + "\n"


def chart(arms: dict[str, dict], path: str | Path) -> Path:
    """Safe-response and over-refusal per category for each arm, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = sorted({c for s in arms.values() for c in s["by_category"]})
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(1, len(arms))
    for ax, key, label in ((axes[0], "safe_response_rate", "safe-response rate (harmful prompts)"),
                           (axes[1], "over_refusal_rate", "over-refusal rate (benign + borderline)")):
        for i, (arm, s) in enumerate(arms.items()):
            vals = [(s["by_category"].get(c) or {}).get(key) for c in cats]
            xs = [j + i * width for j in range(len(cats))]
            ax.bar(xs, [0 if v is None else 100 * v for v in vals], width, label=arm)
        ax.set_xticks([j + width * (len(arms) - 1) / 2 for j in range(len(cats))])
        ax.set_xticklabels(cats, rotation=45, ha="right", fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("%")
        ax.set_title(label, fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(arms: dict[str, dict], out_dir: str | Path, *, title: str = "Red-team report", notes: str = "",
                 outcomes_jsonl: dict[str, str] | None = None) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "summary.json", json.dumps(arms, indent=2))
    for arm, text in (outcomes_jsonl or {}).items():
        atomic_write_text(out / f"outcomes-{arm.replace(' ', '_')}.jsonl", text)
    chart(arms, out / "redteam.png")
    atomic_write_text(out / "report.md", markdown(arms, title, notes) + "\n![per category](redteam.png)\n")
    return out / "report.md"
