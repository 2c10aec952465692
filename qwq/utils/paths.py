"""Where qwq keeps things outside the repository."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The user cache for assembled model files: $QWQ_CACHE, else $XDG_CACHE_HOME/qwq, else ~/.cache/qwq."""
    if os.environ.get("QWQ_CACHE"):
        root = Path(os.environ["QWQ_CACHE"])
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "qwq"
    root.mkdir(parents=True, exist_ok=True)
    return root


def package_dir() -> Path:
    """The installed `qwq` package directory (where shipped assets live)."""
    return Path(__file__).resolve().parent.parent
