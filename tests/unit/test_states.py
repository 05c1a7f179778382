"""Which actions each state allows."""

from __future__ import annotations

import itertools

import pytest

from tasks_server.errors import PreconditionFailed
from tasks_server.states import Action, TaskState, check_transition

R, P, S, E, X = (
    TaskState.RUNNING,
    TaskState.PAUSED,
    TaskState.SUCCESS,
    TaskState.ERROR,
    TaskState.REVOKED,
)
ALLOWED = {
    Action.PAUSE: {R},
    Action.RESUME: {P},
    Action.REVOKE: {R, P},
    Action.EXECUTE: {R},
    Action.EDIT: {R, P},
}


@pytest.mark.parametrize(("action", "state"), list(itertools.product(Action, TaskState)))
def test_transition_table(action: Action, state: TaskState) -> None:
    if state in ALLOWED[action]:
        check_transition(action, state)
    else:
        with pytest.raises(PreconditionFailed):
            check_transition(action, state)


def test_the_refusal_says_what_was_expected() -> None:
    with pytest.raises(PreconditionFailed) as refused:
        check_transition(Action.REVOKE, TaskState.SUCCESS)
    assert refused.value.message == (
        "Cannot revoke a task in state SUCCESS; it must be PAUSED or RUNNING"
    )


def test_only_running_and_paused_are_unfinished() -> None:
    assert {state for state in TaskState if state.unfinished} == {R, P}
