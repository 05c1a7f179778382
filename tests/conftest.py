"""Fixtures shared by the unit and integration suites (the acceptance suite has its own)."""

from __future__ import annotations

import pytest

from tasks_server.clock import FrozenClock

T0_MS = 1_900_000_000_000
"""2030-03-17T17:46:40Z: the moment every frozen clock starts at."""


@pytest.fixture
def frozen_clock() -> FrozenClock:
    """A clock that moves only when a test says so, starting at ``T0_MS``."""
    return FrozenClock(T0_MS)
