"""Results on disk, resumable.

    OUT/run.json                   the backend and sampling settings (a rerun must match them)
    OUT/<run>/samples.jsonl        one line per generated sample, appended as samples finish
    OUT/<run>/scored.jsonl         the same samples with their scores (rewritten after scoring)
    OUT/summary.json               every metric of every run
    OUT/report.md, OUT/charts/     the report

`<run>` is the task name, with `@think<N>` appended for a thinking-budget run. A rerun skips every sample
already in samples.jsonl whose prompt is unchanged (a changed prompt is generated again), so an interrupted run
continues where it stopped and `--n 64` after `--n 16` only adds samples. Scores are reused when the sample
text is unchanged (`--rescore` recomputes them). A crash can leave half a line at the end of samples.jsonl;
it is ignored.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Iterable

from qwq.eval.backends import Completion
from qwq.eval.signals import is_looping, mixes_language, prompt_script
from qwq.eval.tasks.base import EvalItem
from qwq.utils.atomic import atomic_write_text
from qwq.utils.errors import UsageError

RUN_FILE, SUMMARY_FILE = "run.json", "summary.json"
SAMPLES_FILE, SCORED_FILE = "samples.jsonl", "scored.jsonl"


def digest(value) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def sample_record(task: str, item: EvalItem, sample: int, completion: Completion, prompt_sha: str) -> dict:
    """What is stored for one generated sample (the thinking and the answer split, failure signals)."""
    from qwq.tokenizer.reasoning import split_reasoning

    split = split_reasoning(completion.text, starts_in_reasoning=completion.starts_in_reasoning)
    thinking = completion.starts_in_reasoning or bool(split.reasoning)
    return {
        "task": task, "item_id": item.id, "sample": sample, "prompt_sha": prompt_sha,
        "text": completion.text, "starts_in_reasoning": completion.starts_in_reasoning,
        "text_sha": digest(completion.text),
        "thinking_finished": split.finished if thinking else None,
        "finish_reason": completion.finish_reason,
        "prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens,
        "reasoning_tokens": completion.reasoning_tokens, "answer_tokens": completion.answer_tokens,
        "token_counts": completion.token_counts, "latency_s": completion.latency_s,
        "looped": is_looping(completion.text),
        "language_mixed": mixes_language(f"{split.reasoning}\n{split.answer}", prompt_script(item.messages)),
    }


def read_jsonl_tolerant(path: Path) -> list[dict]:
    """Records of a JSONL file we wrote; a torn last line (crash mid-append) is skipped, any other bad line is
    an error naming it."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if number >= len(lines) - 1:  # the last line written: torn by a crash
                continue
            raise UsageError(f"{path}:{number}: not JSON (edit or delete the file)") from None
    return records


def _drop_torn_tail(path: Path) -> None:
    """Cut a last line left unfinished by a crash, so appended records start on a line of their own."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    with open(path, "rb+") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) == b"\n":
            return
        size = f.seek(0, os.SEEK_END)
        keep = 0
        position = size
        while position > 0:  # find the last newline, reading backwards in blocks
            step = min(65536, position)
            position -= step
            f.seek(position)
            block = f.read(step)
            index = block.rfind(b"\n")
            if index >= 0:
                keep = position + index + 1
                break
        f.truncate(keep)


class ResultStore:
    def __init__(self, out_dir: str | os.PathLike):
        self.root = Path(out_dir)

    # ------------------------------------------------------------ run settings
    def check_run(self, settings: dict, overwrite: bool = False) -> None:
        """Record the settings; refuse to mix results of different settings in one directory."""
        path = self.root / RUN_FILE
        if path.is_file() and not overwrite:
            try:
                old = json.loads(path.read_text(encoding="utf-8"))
            except ValueError:
                raise UsageError(f"{path} is not JSON (delete it or pass --overwrite)") from None
            changed = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            if changed:
                details = "; ".join(f"{k}: {old.get(k)!r} -> {settings.get(k)!r}" for k in changed[:4])
                raise UsageError(f"{self.root} holds results of other settings ({details}); use another --out or "
                                 "pass --overwrite to discard them")
        if overwrite:
            self.clear()
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=2, sort_keys=True) + "\n")

    def clear(self) -> None:
        """Remove the files this store writes (and nothing else)."""
        if not self.root.is_dir():
            return
        for name in (RUN_FILE, SUMMARY_FILE, "report.md"):
            (self.root / name).unlink(missing_ok=True)
        for child in self.root.iterdir():
            if child.is_dir():
                for name in (SAMPLES_FILE, SCORED_FILE):
                    (child / name).unlink(missing_ok=True)
        charts = self.root / "charts"
        if charts.is_dir():
            for png in charts.glob("*.png"):
                png.unlink()

    # ------------------------------------------------------------ samples
    def run_dir(self, run: str) -> Path:
        if not run or "/" in run or run.startswith("."):
            raise UsageError(f"bad run name {run!r}")
        return self.root / run.replace(":", "_")

    def load_samples(self, run: str) -> list[dict]:
        return read_jsonl_tolerant(self.run_dir(run) / SAMPLES_FILE)

    def append_samples(self, run: str, records: Iterable[dict]) -> None:
        path = self.run_dir(run) / SAMPLES_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        _drop_torn_tail(path)
        with open(path, "a", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()

    # ------------------------------------------------------------ scores and summary
    def load_scored(self, run: str) -> list[dict]:
        return read_jsonl_tolerant(self.run_dir(run) / SCORED_FILE)

    def write_scored(self, run: str, records: list[dict]) -> None:
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        atomic_write_text(self.run_dir(run) / SCORED_FILE, text)

    def write_summary(self, summary: dict) -> Path:
        path = self.root / SUMMARY_FILE
        atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=False, default=str) + "\n")
        return path

    def load_summary(self) -> dict | None:
        path = self.root / SUMMARY_FILE
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
