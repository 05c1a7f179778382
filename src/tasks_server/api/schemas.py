"""What the API answers, and the small inputs it reads besides a task body."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from ..errors import InvalidInput
from ..states import TaskState
from ..store import AttemptRow, OwnerRow, SigningSecretRow, TaskQuery, TaskRow
from ..validators import lower, upper

NAME_PATTERN = r"^(?![0-9-])(?!.*--)[a-z0-9-]{5,32}(?<!-)$"
NAME_MESSAGE = (
    "String cannot start or end with a hyphen, contain consecutive hyphens, or begin with a number"
)
_NAME_RE = re.compile(NAME_PATTERN)
_TASK_ID_RE = re.compile(r"^[0-9A-Za-z]{24}$")


def check_name(value: Any) -> str:
    if not isinstance(value, str) or not 5 <= len(value) <= 32:
        raise ValueError("Name must be a string of 5 to 32 characters")
    if not _NAME_RE.match(value):
        raise ValueError(NAME_MESSAGE)
    return value


def owner_name(value: str) -> str:
    try:
        return check_name(value)
    except ValueError as exc:
        raise InvalidInput(detail={"_errors": [], "name": {"_errors": [str(exc)]}}) from None


def task_id(value: str) -> str:
    if not _TASK_ID_RE.match(value):
        raise InvalidInput(detail={"_errors": [], "queueId": {"_errors": ["Invalid queue id"]}})
    return value.upper()


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OwnerRegistration(Input):
    name: Annotated[
        str, BeforeValidator(check_name), Field(json_schema_extra={"pattern": NAME_PATTERN})
    ]


class ListQuery(Input):
    model_config = ConfigDict(extra="forbid", strict=False)

    limit: Annotated[int, Field(ge=1, le=1000)] = 10
    offset: Annotated[int, Field(ge=0)] = 0
    order: Literal["createdAt", "estimateEndAt", "estimateExecutionAt"] = "createdAt"
    sort: Annotated[Literal["asc", "desc"], BeforeValidator(lower)] = "asc"
    state: Annotated[TaskState | None, BeforeValidator(upper)] = None

    def query(self) -> TaskQuery:
        return TaskQuery(
            limit=self.limit,
            offset=self.offset,
            order=self.order,
            descending=self.sort == "desc",
            state=self.state,
        )


class Registered(BaseModel):
    id: str
    key: str = Field(description="The secret key: shown once, store it now")
    signingSecret: str = Field(description="Verifies the signatures of outgoing requests")


class Rotation(Input):
    overlapSeconds: Annotated[int, Field(ge=0, le=30 * 24 * 3600)] = 86_400


class SigningSecret(BaseModel):
    secret: str
    createdAt: int
    expiresAt: int | None = Field(description="When it stops signing; null for the current one")


class Owner(BaseModel):
    id: str
    name: str
    createdAt: int
    tasksInQueue: int
    tasksInQueueLimit: int


class Done(BaseModel):
    status: Literal["Done"] = "Done"


class Task(BaseModel):
    id: str
    state: TaskState
    createdAt: int
    statusCode: int
    estimateEndAt: int
    estimateExecutionAt: int
    response: str | None = None
    metadata: dict[str, str] | None = None
    retryCount: int


class TaskSummary(BaseModel):
    id: str
    state: TaskState
    createdAt: int
    statusCode: int
    estimateEndAt: int
    estimateExecutionAt: int
    retryCount: int


class Attempt(BaseModel):
    attempt: int
    startedAt: int
    durationMs: int
    statusCode: int
    error: str | None
    outcome: Literal["SUCCESS", "RETRY", "ERROR", "IGNORED"]


def owner_json(owner: OwnerRow, limit: int) -> dict[str, Any]:
    return {
        "id": owner.id,
        "name": owner.name,
        "createdAt": owner.created_at,
        "tasksInQueue": owner.tasks_in_queue,
        "tasksInQueueLimit": limit,
    }


def secret_json(row: SigningSecretRow) -> dict[str, Any]:
    return {"secret": row.secret, "createdAt": row.created_at, "expiresAt": row.expires_at}


def summary_json(row: TaskRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "state": row.state,
        "createdAt": row.created_at,
        "statusCode": row.status_code,
        "estimateEndAt": row.estimate_end_at,
        "estimateExecutionAt": row.estimate_execution_at,
        "retryCount": row.retry_count,
    }


def task_json(row: TaskRow) -> dict[str, Any]:
    task = summary_json(row)
    task["response"] = row.response
    task["metadata"] = orjson.loads(row.metadata) if row.metadata else None
    return task


def attempt_json(row: AttemptRow) -> dict[str, Any]:
    return {
        "attempt": row.attempt,
        "startedAt": row.started_at,
        "durationMs": row.duration_ms,
        "statusCode": row.status_code,
        "error": row.error,
        "outcome": row.outcome,
    }
