"""Fixtures for the sandbox tests: one shared sandbox for the whole session."""

from __future__ import annotations

import pytest

from qwq.sandbox.runner import LAYERS, Sandbox

from .helpers import require_layers


@pytest.fixture(scope="session")
def sandbox():
    box = Sandbox(max_sessions=16).start()
    yield box
    box.close()


@pytest.fixture(scope="session")
def full_isolation(sandbox):
    require_layers(sandbox, *LAYERS)
    return sandbox
