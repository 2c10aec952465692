"""Trainer checkpoints: atomic, keep-last-k, full state (model, optimizer, RNG, data cursor, metrics).

Layout of a stage directory:

    <stage>/checkpoints/step-000010/model/      HF-format weights + config (loadable with `-m`)
    <stage>/checkpoints/step-000010/trainer.pt  optimizer, scheduler position, RNG states, cursor, metrics, extras

A checkpoint directory is built under a temporary name and renamed into place (qwq.utils.atomic), so a kill -9
at any moment leaves the previous checkpoints intact and never a half-written one. Trainers derive every random
choice of a step from (seed, stage, step), so resuming from step k and running on reproduces exactly the
weights an uninterrupted run reaches.
"""

from __future__ import annotations

import io
import random
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qwq.utils.atomic import atomic_directory
from qwq.utils.errors import CheckpointError

_STEP_DIR = re.compile(r"^step-(\d{6,})$")


@dataclass
class TrainerState:
    step: int = 0  # optimizer steps done
    cursor: int = 0  # position in the data stream (examples consumed)
    metrics: list | None = None  # per-step metric records so far
    extra: dict | None = None  # trainer-specific (e.g. EMA of rewards, the probe result)


def step_dir(root: Path, step: int) -> Path:
    return Path(root) / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(root: str | Path) -> list[tuple[int, Path]]:
    folder = Path(root) / "checkpoints"
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _STEP_DIR.match(child.name)
        if match and (child / "trainer.pt").is_file():
            found.append((int(match.group(1)), child))
    return sorted(found)


def latest_checkpoint(root: str | Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1][1] if found else None


def rng_state() -> dict:
    return {"python": random.getstate(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(root: str | Path, model: torch.nn.Module, config: Any, optimizer: torch.optim.Optimizer | None,
                    state: TrainerState, keep: int = 2, trainable_only: bool = False) -> Path:
    """Write step-<state.step> atomically and prune all but the newest `keep` checkpoints.

    `config` is the model's ModelConfig (written with the weights). With `trainable_only` (LoRA) the model folder
    is skipped and only the trainable tensors go into trainer.pt: the frozen base is reloaded from its source.
    """
    from qwq.model.weights import save_hf_checkpoint

    root = Path(root)
    target = step_dir(root, state.step)
    payload = {
        "step": state.step, "cursor": state.cursor, "metrics": state.metrics or [], "extra": state.extra or {},
        "optimizer": optimizer.state_dict() if optimizer is not None else None, "rng": rng_state(),
    }
    if trainable_only:
        payload["trainable"] = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    with atomic_directory(target) as tmp:
        if not trainable_only:
            save_hf_checkpoint(model, config, tmp / "model")
        (tmp / "trainer.pt").write_bytes(buffer.getvalue())
    for _, old in list_checkpoints(root)[:-max(1, keep)]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def load_checkpoint(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None
                    ) -> TrainerState:
    """Restore weights, optimizer and RNG in place from a step directory; returns the trainer state."""
    from qwq.model.weights import load_state_dict

    path = Path(path)
    trainer_file = path / "trainer.pt"
    if not trainer_file.is_file():
        raise CheckpointError(f"{path}: not a checkpoint (no trainer.pt)")
    try:
        payload = torch.load(trainer_file, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - a corrupt pickle raises many types
        raise CheckpointError(f"{trainer_file}: cannot read ({type(exc).__name__}: {exc})") from None
    with torch.no_grad():
        if "trainable" in payload:
            params = dict(model.named_parameters())
            for name, tensor in payload["trainable"].items():
                if name not in params:
                    raise CheckpointError(f"{trainer_file}: tensor {name!r} does not exist in the model")
                params[name].copy_(tensor)
        else:
            state = load_state_dict(path / "model")
            own = model.state_dict()
            for name, tensor in state.items():
                if name not in own:
                    raise CheckpointError(f"{path / 'model'}: tensor {name!r} does not exist in the model")
                if own[name].shape != tensor.shape:
                    raise CheckpointError(f"{path / 'model'}: tensor {name!r} has shape {tuple(tensor.shape)}, the "
                                          f"model expects {tuple(own[name].shape)}")
                own[name].copy_(tensor.to(own[name].dtype))
    if optimizer is not None and payload.get("optimizer") is not None:
        optimizer.load_state_dict(payload["optimizer"])
    set_rng_state(payload["rng"])
    return TrainerState(payload["step"], payload["cursor"], payload["metrics"], payload["extra"])
