"""Seeding every RNG qwq uses, in one place."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int) -> None:
    random.seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
    try:
        import numpy as np

        np.random.seed(seed % (2**32))
    except ImportError:
        pass
    import sys

    if "torch" in sys.modules:  # never import torch just to seed it: torch-free layers call this too
        import torch

        torch.manual_seed(seed)
