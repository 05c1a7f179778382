"""``/v1/queues``: register, list, read, edit and control tasks."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..spec import TaskSpec
from ..store import OwnerRow
from ..tasks import Tasks
from .auth import current_owner
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

router = APIRouter(tags=["Queue"])
Caller = Annotated[OwnerRow, Depends(current_owner)]
DONE = {"status": "Done"}


def _body_schema(description: str) -> dict[str, Any]:
    ref = {"$ref": "#/components/schemas/TaskSpec"}
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": ref}},
        }
    }


def _tasks(request: Request) -> Tasks:
    tasks: Tasks = request.app.state.tasks
    return tasks


@router.post(
    "/register",
    status_code=201,
    response_model=Task,
    openapi_extra=_body_schema("The task: the HTTP request to send and when"),
)
async def register(request: Request, caller: Caller) -> Response:
    """Schedule an HTTP request. Answered once the task is committed to disk."""
    row = await _tasks(request).register(caller, await read_body(request))
    return json_response(task_json(row), 201)


@router.get("", response_model=list[TaskSummary])
async def list_tasks(request: Request, caller: Caller) -> Response:
    """The caller's tasks. Query: limit, offset, order, sort, state."""
    query = ListQuery.model_validate(dict(request.query_params))
    rows = await _tasks(request).find(caller, query.query())
    return json_response([summary_json(row) for row in rows])


@router.get("/{id}", response_model=Task)
async def get_task(id: str, request: Request, caller: Caller) -> Response:
    return json_response(task_json(await _tasks(request).get(caller, task_id(id))))


@router.patch(
    "/{id}",
    response_model=Task,
    openapi_extra=_body_schema("A JSON merge patch (RFC 7396) of the registration body"),
)
async def edit_task(id: str, request: Request, caller: Caller) -> Response:
    """Edit a task that has not finished; changing the schedule reschedules it from now."""
    row = await _tasks(request).edit(caller, task_id(id), await read_body(request))
    return json_response(task_json(row))


@router.delete("/{id}", response_model=Done)
async def delete_task(id: str, request: Request, caller: Caller) -> Response:
    await _tasks(request).delete(caller, task_id(id))
    return json_response(DONE)


@router.get("/{id}/config", response_model=TaskSpec)
async def get_config(id: str, request: Request, caller: Caller) -> Response:
    """The effective request and configuration, defaults included, secrets masked."""
    return json_response(await _tasks(request).config(caller, task_id(id)))


@router.get("/{id}/attempts", response_model=list[Attempt])
async def get_attempts(id: str, request: Request, caller: Caller) -> Response:
    """Every attempt so far, oldest first."""
    rows = await _tasks(request).attempts(caller, task_id(id))
    return json_response([attempt_json(row) for row in rows])


@router.patch("/{id}/pause", response_model=Done)
async def pause(id: str, request: Request, caller: Caller) -> Response:
    await _tasks(request).pause(caller, task_id(id))
    return json_response(DONE)


@router.patch("/{id}/resume", response_model=Task)
async def resume(id: str, request: Request, caller: Caller) -> Response:
    return json_response(task_json(await _tasks(request).resume(caller, task_id(id))))


@router.patch("/{id}/revoke", response_model=Done)
async def revoke(id: str, request: Request, caller: Caller) -> Response:
    await _tasks(request).revoke(caller, task_id(id))
    return json_response(DONE)


@router.post("/{id}/execute", response_model=Done)
async def execute(id: str, request: Request, caller: Caller) -> Response:
    """Make the next attempt due now."""
    await _tasks(request).execute(caller, task_id(id))
    return json_response(DONE)
