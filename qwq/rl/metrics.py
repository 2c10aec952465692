"""Metrics: one JSON object per optimizer step, appended to a JSONL file (flushed every line), plus the small
plumbing every trainer shares (a step clock, a seeded RNG per step, a torch thread setting)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any, Iterable

from qwq.utils.atomic import atomic_write_text


def _clean(value: Any) -> Any:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


class MetricsLog:
    """Append-only JSONL of step records. `restart(records)` rewrites it to exactly `records` (used on resume, so
    steps that are about to be redone do not appear twice)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.records: list[dict] = []

    def restart(self, records: Iterable[dict]) -> None:
        self.records = [dict(r) for r in records]
        atomic_write_text(self.path, "".join(json.dumps(_clean(r)) + "\n" for r in self.records))

    def write(self, record: dict) -> None:
        record = _clean(record)
        self.records.append(record)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
            f.flush()


def read_metrics(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def step_rng(seed: int, stage: str, step: int, purpose: str = "") -> random.Random:
    """The random stream of one step: a function of (seed, stage, step) only, so a resumed run replays it."""
    return random.Random(f"{seed}/{stage}/{step}/{purpose}")


def step_seed(seed: int, stage: str, step: int, purpose: str = "") -> int:
    return step_rng(seed, stage, step, purpose).getrandbits(62)


def cpu_has_native_bf16() -> bool:
    """Linux CPU flags for bf16 matmul in hardware (elsewhere: assume not, so autocast stays off)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = f.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def autocast_enabled(setting: str, device: str = "cpu") -> bool:
    """Does the run's `autocast` setting turn bf16 autocast on for `device`?"""
    if setting not in ("auto", "on", "off"):
        from qwq.utils.errors import ConfigError

        raise ConfigError(f"run.autocast must be auto, on or off, got {setting!r}")
    return setting == "on" or (setting == "auto" and (device != "cpu" or cpu_has_native_bf16()))


def autocast_context(setting: str, device: str = "cpu"):
    """torch.autocast(bf16) per the run's `autocast` setting, or a no-op context."""
    import contextlib

    import torch

    enabled = autocast_enabled(setting, device)
    return torch.autocast(device, dtype=torch.bfloat16) if enabled else contextlib.nullcontext()


def rollout_dtype(run, device: str = "cpu"):
    """The dtype GRPO samples in: run.rollout_dtype, where "auto" follows run.autocast."""
    import torch

    from qwq.rl.config import check_rollout_settings

    check_rollout_settings(run)
    setting = run.rollout_dtype
    if setting == "auto":
        return torch.bfloat16 if autocast_enabled(run.autocast, device) else torch.float32
    return torch.bfloat16 if setting == "bfloat16" else torch.float32


def set_threads(threads: int) -> None:
    import torch

    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
