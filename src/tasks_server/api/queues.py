"""``/v1/queues``: register, list, read, edit and control tasks."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from ..spec import TaskSpec
from ..store import OwnerRow
from ..tasks import Tasks
from .auth import current_owner
from .endpoints import Endpoint
from .http import json_response, read_body
from .schemas import (
    Attempt,
    Done,
    ListQuery,
    Task,
    TaskSummary,
    attempt_json,
    summary_json,
    task_id,
    task_json,
)

DONE = {"status": "Done"}


async def _context(request: Request) -> tuple[Tasks, OwnerRow]:
    tasks: Tasks = request.app.state.tasks
    return tasks, await current_owner(request)


def _id(request: Request) -> str:
    return task_id(request.path_params["id"])


async def register(request: Request) -> Response:
    """Schedule an HTTP request. Answered once the task is committed to disk."""
    tasks, caller = await _context(request)
    row = await tasks.register(caller, await read_body(request))
    return json_response(task_json(row), 201)


async def list_tasks(request: Request) -> Response:
    """The caller's tasks. Query: limit (1..1000), offset, order, sort (asc|desc), state."""
    tasks, caller = await _context(request)
    query = ListQuery.model_validate(dict(request.query_params))
    rows = await tasks.find(caller, query.query())
    return json_response([summary_json(row) for row in rows])


async def get_task(request: Request) -> Response:
    tasks, caller = await _context(request)
    return json_response(task_json(await tasks.get(caller, _id(request))))


async def edit_task(request: Request) -> Response:
    """Edit a task that has not finished; changing the schedule reschedules it from now."""
    tasks, caller = await _context(request)
    row = await tasks.edit(caller, _id(request), await read_body(request))
    return json_response(task_json(row))


async def delete_task(request: Request) -> Response:
    """Delete a task in any state, with its attempt history."""
    tasks, caller = await _context(request)
    await tasks.delete(caller, _id(request))
    return json_response(DONE)


async def get_config(request: Request) -> Response:
    """The effective request and configuration, defaults included, secrets masked."""
    tasks, caller = await _context(request)
    return json_response(await tasks.config(caller, _id(request)))


async def get_attempts(request: Request) -> Response:
    """Every attempt so far, oldest first."""
    tasks, caller = await _context(request)
    rows = await tasks.attempts(caller, _id(request))
    return json_response([attempt_json(row) for row in rows])


async def pause(request: Request) -> Response:
    """RUNNING to PAUSED: the countdown stops."""
    tasks, caller = await _context(request)
    await tasks.pause(caller, _id(request))
    return json_response(DONE)


async def resume(request: Request) -> Response:
    """PAUSED to RUNNING, rescheduled with the time that was left."""
    tasks, caller = await _context(request)
    return json_response(task_json(await tasks.resume(caller, _id(request))))


async def revoke(request: Request) -> Response:
    """RUNNING or PAUSED to REVOKED: the task will not be sent again."""
    tasks, caller = await _context(request)
    await tasks.revoke(caller, _id(request))
    return json_response(DONE)


async def execute(request: Request) -> Response:
    """Make the next attempt (the first one, or a retry) due now."""
    tasks, caller = await _context(request)
    await tasks.execute(caller, _id(request))
    return json_response(DONE)


ENDPOINTS = [
    Endpoint(
        "POST",
        "/register",
        register,
        201,
        Task,
        body=TaskSpec,
        body_description="The HTTP request to send, and when",
    ),
    Endpoint("GET", "", list_tasks, answer=TaskSummary, many=True),
    Endpoint("GET", "/{id}", get_task, answer=Task),
    Endpoint(
        "PATCH",
        "/{id}",
        edit_task,
        answer=Task,
        body=TaskSpec,
        body_description="A JSON merge patch (RFC 7396) of the registration body",
    ),
    Endpoint("DELETE", "/{id}", delete_task, answer=Done),
    Endpoint("GET", "/{id}/config", get_config, answer=TaskSpec),
    Endpoint("GET", "/{id}/attempts", get_attempts, answer=Attempt, many=True),
    Endpoint("PATCH", "/{id}/pause", pause, answer=Done),
    Endpoint("PATCH", "/{id}/resume", resume, answer=Task),
    Endpoint("PATCH", "/{id}/revoke", revoke, answer=Done),
    Endpoint("POST", "/{id}/execute", execute, answer=Done),
]
