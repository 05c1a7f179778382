"""The states of a task and the moves between them."""

from __future__ import annotations

import enum

from .errors import PreconditionFailed


class TaskState(enum.StrEnum):
    RUNNING = "RUNNING"
    """Waiting for its first attempt, being delivered, or waiting for a retry."""
    PAUSED = "PAUSED"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    REVOKED = "REVOKED"

    @property
    def unfinished(self) -> bool:
        return self in (TaskState.RUNNING, TaskState.PAUSED)


class Action(enum.StrEnum):
    PAUSE = "pause"
    RESUME = "resume"
    REVOKE = "revoke"
    EXECUTE = "execute"
    EDIT = "edit"


ALLOWED: dict[Action, frozenset[TaskState]] = {
    Action.PAUSE: frozenset({TaskState.RUNNING}),
    Action.RESUME: frozenset({TaskState.PAUSED}),
    Action.REVOKE: frozenset({TaskState.RUNNING, TaskState.PAUSED}),
    Action.EXECUTE: frozenset({TaskState.RUNNING}),
    Action.EDIT: frozenset({TaskState.RUNNING, TaskState.PAUSED}),
}


def check_transition(action: Action, state: TaskState) -> None:
    """Raise ``PreconditionFailed`` unless ``action`` may be applied in ``state``."""
    allowed = ALLOWED[action]
    if state not in allowed:
        expected = " or ".join(sorted(allowed))
        raise PreconditionFailed(f"Cannot {action} a task in state {state}; it must be {expected}")
