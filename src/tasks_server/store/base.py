"""The storage interface: everything the services and the dispatcher ask of a database.

A backend keeps every write that a method has returned from on durable storage, except where
noted (claims and attempt results may be lost on power loss: the task is then delivered again).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from ..states import TaskState

Order = Literal["createdAt", "estimateEndAt", "estimateExecutionAt"]


@dataclass(frozen=True, slots=True)
class OwnerRow:
    id: str
    name: str
    key_hash: bytes
    created_at: int
    tasks_in_queue: int = 0


@dataclass(frozen=True, slots=True)
class TaskRow:
    id: str
    owner_id: str
    state: TaskState
    created_at: int
    due_at: int | None
    """When the dispatcher may claim it; None when nothing is to be sent."""
    claim: str | None
    """Set while an attempt is in flight."""
    estimate_execution_at: int
    estimate_end_at: int
    status_code: int
    response: str | None
    retry_count: int
    absolute: bool
    timeout_ms: int
    metadata: str | None
    spec: str
    delivery: str
    first_attempt_at: int | None = None


@dataclass(frozen=True, slots=True)
class TaskQuery:
    limit: int = 10
    offset: int = 0
    order: Order = "createdAt"
    descending: bool = False
    state: TaskState | None = None


@dataclass(frozen=True, slots=True)
class Claimed:
    """A task handed to the dispatcher for one attempt."""

    id: str
    owner_id: str
    claim: str
    retry_count: int
    due_at: int
    delivery: str
    first_attempt_at: int | None = None
    """When the task's first attempt was claimed (this one, for a first attempt)."""


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """The outcome of one attempt and what it does to the task."""

    task_id: str
    claim: str
    attempt: int
    started_at: int
    duration_ms: int
    status_code: int
    error: str | None
    response: str | None
    state: TaskState
    outcome: str
    retry_count: int
    next_due_at: int | None
    end_at: int


@dataclass(frozen=True, slots=True)
class AttemptRow:
    attempt: int
    started_at: int
    duration_ms: int
    status_code: int
    error: str | None
    outcome: str


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    tasks: Sequence[Claimed]
    next_due_at: int | None
    """The earliest due time left after the claim, to sleep until."""
    secrets: Mapping[str, Sequence[str]]
    """The signing secrets in force for each owner of the claimed tasks, newest first."""


@dataclass(frozen=True, slots=True)
class SigningSecretRow:
    secret: str
    created_at: int
    expires_at: int | None


class Store(Protocol):
    async def open(self, now_ms: int) -> None:
        """Create or migrate the schema; make tasks an earlier process left in flight due."""
        ...

    async def close(self) -> None: ...

    async def add_owner(self, owner: OwnerRow, signing_secret: str) -> None:
        """Add the owner with its first signing secret.

        :raises Conflict: the name is taken.
        """
        ...

    async def rotate_signing_secret(
        self, owner_id: str, secret: str, *, now_ms: int, overlap_ms: int
    ) -> list[SigningSecretRow]:
        """Make ``secret`` the current one; the others sign until ``now + overlap``.

        Returns the secrets in force, newest first.
        """
        ...

    async def signing_secrets(self, owner_id: str, now_ms: int) -> list[SigningSecretRow]:
        """The secrets in force, newest first."""
        ...

    async def get_owner(self, owner_id: str) -> OwnerRow | None: ...

    async def delete_owner(self, owner_id: str) -> bool:
        """Delete the owner and its tasks; False while it has unfinished tasks."""
        ...

    async def add_task(self, task: TaskRow, queue_limit: int) -> bool:
        """Insert a RUNNING task; False (and nothing written) when the owner is at its limit."""
        ...

    async def get_task(self, owner_id: str, task_id: str) -> TaskRow | None: ...

    async def list_tasks(self, owner_id: str, query: TaskQuery) -> list[TaskRow]: ...

    async def modify_task(
        self, owner_id: str, task_id: str, change: Callable[[TaskRow], TaskRow]
    ) -> TaskRow:
        """Apply ``change`` to the task atomically (it may raise to refuse); return the result.

        :raises NotFound: no such task for this owner.
        """
        ...

    async def delete_task(self, owner_id: str, task_id: str) -> bool: ...

    async def list_attempts(self, owner_id: str, task_id: str) -> list[AttemptRow] | None:
        """None when the task does not exist for this owner."""
        ...

    async def exchange(
        self,
        results: Sequence[AttemptResult],
        *,
        now_ms: int,
        limit: int,
        claim: str,
    ) -> ClaimBatch:
        """Record finished attempts, then claim up to ``limit`` due tasks, in one transaction.

        A result whose claim no longer holds (the task was paused, revoked, edited or deleted
        meanwhile) changes nothing but the attempt history. Claimed tasks are leased until
        ``now + timeout + margin``; a lease that runs out makes the task due again.
        """
        ...
