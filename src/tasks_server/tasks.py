"""Tasks: the use cases of one scheduled HTTP request, from registration to its end."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import orjson

from .clock import Clock
from .delivery import compile_delivery, dump_delivery
from .errors import Conflict, InvalidInput, NotFound, PreconditionFailed
from .ids import new_task_id
from .options import refusals
from .scheduling import first_due_at, resume_due_at
from .spec import TaskSpec
from .states import Action, TaskState, check_transition
from .store import AttemptRow, OwnerRow, Store, TaskQuery, TaskRow

OnDue = Callable[[int], None]
NOTHING_REFUSED: Mapping[str, str] = MappingProxyType({})
SCHEDULE_FIELDS = ("executionDelay", "executeAt")
MASK = "********"
SECRET_HEADERS = ("authorization", "proxy-authorization", "cookie")
CREDENTIALS = [
    ("httpRequest", "authBasic"),
    ("httpRequest", "authDigest"),
    ("httpRequest", "authNtlm"),
    ("httpRequest", "authAwsSigv4"),
    ("config", "locationTrusted"),
    ("config", "proxyAuthBasic"),
    ("config", "proxyAuthDigest"),
    ("config", "proxyAuthNtlm"),
]


def parse_spec(
    body: bytes | str,
    now_ms: int,
    *,
    unsupported: Mapping[str, str] = NOTHING_REFUSED,
    dates: set[str] | None = None,
) -> TaskSpec:
    """Validate a registration body; dates must lie ahead of ``now_ms``.

    :param unsupported: options the transport cannot honour (refused), with the reason.
    :param dates: check only these date fields against the time (all when None).
    """
    context = {"now_ms": now_ms, "future": True, "dates": dates}
    spec = TaskSpec.model_validate_json(body, context=context)
    refused = refusals(spec.http_request, spec.config, unsupported)
    if refused is not None:
        raise InvalidInput(detail=refused)
    return spec


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    merged = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = merge_patch(merged.get(key), value)
    return merged


def _row(owner: OwnerRow, body: bytes, spec: TaskSpec, now: int) -> TaskRow:
    """A new task; ``body`` is the validated body as given (what an edit patches)."""
    config = spec.config
    due = first_due_at(now, config.execution_delay, config.execute_at)
    return TaskRow(
        id=new_task_id(now),
        owner_id=owner.id,
        state=TaskState.RUNNING,
        created_at=now,
        due_at=due,
        claim=None,
        estimate_execution_at=due,
        estimate_end_at=0,
        status_code=0,
        response=None,
        retry_count=0,
        absolute=config.execute_at is not None,
        timeout_ms=_lease_timeout(spec, due),
        metadata=orjson.dumps(spec.metadata).decode() if spec.metadata else None,
        spec=body.decode(),
        delivery=dump_delivery(compile_delivery(spec)).decode(),
    )


def _lease_timeout(spec: TaskSpec, due: int) -> int:
    config = spec.config
    first = config.timeout_at - due if config.timeout_at is not None else 0
    return max(config.timeout, first)


class Tasks:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        queue_limit: int,
        on_due: OnDue,
        unsupported: Mapping[str, str] = NOTHING_REFUSED,
    ) -> None:
        self._store = store
        self._clock = clock
        self.queue_limit = queue_limit
        self._on_due = on_due
        self._unsupported = unsupported

    async def register(self, owner: OwnerRow, body: bytes) -> TaskRow:
        now = self._clock.now_ms()
        row = _row(owner, body, parse_spec(body, now, unsupported=self._unsupported), now)
        if not await self._store.add_task(row, self.queue_limit):
            raise PreconditionFailed("Tasks in queue has reached it's limit")
        self._on_due(row.estimate_execution_at)
        return row

    async def get(self, owner: OwnerRow, task_id: str) -> TaskRow:
        row = await self._store.get_task(owner.id, task_id)
        if row is None:
            raise NotFound("Task not found")
        return row

    async def find(self, owner: OwnerRow, query: TaskQuery) -> list[TaskRow]:
        return await self._store.list_tasks(owner.id, query)

    async def attempts(self, owner: OwnerRow, task_id: str) -> list[AttemptRow]:
        rows = await self._store.list_attempts(owner.id, task_id)
        if rows is None:
            raise NotFound("Task not found")
        return rows

    async def config(self, owner: OwnerRow, task_id: str) -> dict[str, Any]:
        """The effective request and configuration, with defaults and secrets masked."""
        row = await self.get(owner, task_id)
        spec = TaskSpec.model_validate_json(row.spec, context={"stored": True})
        return _masked(spec.model_dump(mode="json", by_alias=True))

    async def delete(self, owner: OwnerRow, task_id: str) -> None:
        if not await self._store.delete_task(owner.id, task_id):
            raise NotFound("Task not found")

    async def pause(self, owner: OwnerRow, task_id: str) -> TaskRow:
        now = self._clock.now_ms()

        def pause(row: TaskRow) -> TaskRow:
            check_transition(Action.PAUSE, row.state)
            return replace(
                row, state=TaskState.PAUSED, due_at=None, claim=None, estimate_end_at=now
            )

        return await self._store.modify_task(owner.id, task_id, pause)

    async def resume(self, owner: OwnerRow, task_id: str) -> TaskRow:
        now = self._clock.now_ms()

        def resume(row: TaskRow) -> TaskRow:
            check_transition(Action.RESUME, row.state)
            config = orjson.loads(row.spec).get("config", {})
            due = resume_due_at(
                next_due_at_ms=row.estimate_execution_at,
                paused_at_ms=row.estimate_end_at,
                now_ms=now,
                absolute=row.absolute and row.retry_count == 0,
                execute_immediately=bool(config.get("executeImmediately")),
            )
            return replace(
                row,
                state=TaskState.RUNNING,
                due_at=due,
                estimate_execution_at=due,
                estimate_end_at=0,
            )

        return await self._due(await self._store.modify_task(owner.id, task_id, resume))

    async def revoke(self, owner: OwnerRow, task_id: str) -> TaskRow:
        now = self._clock.now_ms()

        def revoke(row: TaskRow) -> TaskRow:
            check_transition(Action.REVOKE, row.state)
            return replace(
                row,
                state=TaskState.REVOKED,
                due_at=None,
                claim=None,
                estimate_end_at=now,
                status_code=0,
                response=None,
            )

        return await self._store.modify_task(owner.id, task_id, revoke)

    async def execute(self, owner: OwnerRow, task_id: str) -> TaskRow:
        """Make the next attempt due now; a task being delivered is left alone."""
        now = self._clock.now_ms()

        def execute(row: TaskRow) -> TaskRow:
            check_transition(Action.EXECUTE, row.state)
            if row.claim is not None:
                return row
            return replace(row, due_at=now, estimate_execution_at=now)

        return await self._due(await self._store.modify_task(owner.id, task_id, execute))

    async def edit(self, owner: OwnerRow, task_id: str, patch_body: bytes) -> TaskRow:
        patch = _json_object(patch_body)
        now = self._clock.now_ms()
        current = await self.get(owner, task_id)
        body = orjson.dumps(merge_patch(orjson.loads(current.spec), patch))
        patched = patch.get("config")
        patched_config: dict[str, Any] = patched if isinstance(patched, dict) else {}
        spec = parse_spec(body, now, unsupported=self._unsupported, dates=set(patched_config))
        fresh = _row(owner, body, spec, now)
        reschedule = any(name in patched_config for name in SCHEDULE_FIELDS)

        def edit(row: TaskRow) -> TaskRow:
            check_transition(Action.EDIT, row.state)
            if row.claim is not None:
                raise Conflict("The task is being delivered right now; edit it once it ends")
            if row.spec != current.spec:
                raise Conflict("The task changed during the edit; try again")
            edited = replace(
                row,
                absolute=fresh.absolute if reschedule else row.absolute,
                timeout_ms=fresh.timeout_ms,
                metadata=fresh.metadata,
                spec=fresh.spec,
                delivery=fresh.delivery,
            )
            if not reschedule:
                return edited
            due = fresh.estimate_execution_at
            if row.state is TaskState.PAUSED:
                return replace(edited, estimate_execution_at=due, estimate_end_at=now)
            return replace(edited, due_at=due, estimate_execution_at=due)

        return await self._due(await self._store.modify_task(owner.id, task_id, edit))

    async def _due(self, row: TaskRow) -> TaskRow:
        if row.due_at is not None and row.claim is None:
            self._on_due(row.due_at)
        return row


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput("The body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise InvalidInput("The body must be a JSON object")
    return value


def _masked(config: dict[str, Any]) -> dict[str, Any]:
    """Passwords, keys, cookies and credential headers replaced by a mask."""
    request, settings = config["httpRequest"], config["config"]
    for headers in (request.get("headers"), settings.get("proxyHeaders")):
        for name in headers or {}:
            if name.lower() in SECRET_HEADERS:
                headers[name] = MASK
    if isinstance(request.get("cookie"), list):
        for cookie in request["cookie"]:
            cookie["value"] = MASK
    elif request.get("cookie"):
        request["cookie"] = MASK
    for section, field in CREDENTIALS:
        found = config[section].get(field)
        if found:
            found["secret" if "secret" in found else "password"] = MASK
    if settings.get("cert") and settings["cert"].get("password"):
        settings["cert"]["password"] = MASK
    if settings.get("key") and not settings["key"].startswith(("/", ".")):
        settings["key"] = MASK
    return config
