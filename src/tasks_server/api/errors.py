"""Every error leaves the API as the seed's envelope: ``{"action": ..., "message": ...}``.

Domain exceptions are translated here and nowhere else.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from ..errors import (
    AuthenticationError,
    Conflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    TasksError,
    TooLarge,
    WrongKey,
)

log = logging.getLogger(__name__)

FIX = "Do not retry without fixing the problem"
DONT_REPEAT = "The request should not be repeated"
ACTIONS = {
    400: FIX,
    401: DONT_REPEAT,
    403: DONT_REPEAT,
    404: FIX,
    405: FIX,
    409: FIX,
    413: FIX,
    422: FIX,
    429: "Please wait until the server restore your connection",
}
STATUS: list[tuple[type[TasksError], int]] = [
    (InvalidInput, 400),
    (WrongKey, 401),
    (AuthenticationError, 403),
    (NotFound, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (PreconditionFailed, 422),
]
_UNION_TAGS = {"data": ("text", "form", "json"), "cookie": ("jar", "pairs")}


def envelope(status: int, message: Any) -> Response:
    action = ACTIONS.get(status, "Do not retry this request more than once")
    body = orjson.dumps({"action": action, "message": message})
    return Response(body, status_code=status, media_type="application/json")


def error_tree(errors: list[Any]) -> dict[str, Any]:
    """Pydantic errors as the original's zod tree: a node per field, each with ``_errors``."""
    root: dict[str, Any] = {"_errors": []}
    for error in errors:
        path = _path(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = f"Unrecognized key(s) in object: '{path.pop()}'"
        node = root
        for part in path:
            node = node.setdefault(part, {"_errors": []})
        node["_errors"].append(message)
    return root


def _path(loc: tuple[Any, ...]) -> list[str]:
    """The field path, without the tag pydantic adds after a union field for its branch."""
    path: list[str] = []
    for part in loc:
        if not (path and part in _UNION_TAGS.get(path[-1], ())):
            path.append(str(part))
    return path


async def _tasks_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TasksError)
    status = next((code for kind, code in STATUS if isinstance(exc, kind)), 500)
    if status == 500:
        log.error("request failed: %s", exc, extra={"action": "request_failed"})
    return envelope(status, exc.detail if exc.detail is not None else exc.message)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ValidationError)
    return envelope(400, error_tree(list(exc.errors())))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "Not found" if exc.status_code == 404 else exc.detail
    return envelope(exc.status_code, message)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error", extra={"action": "request_crashed"})
    return envelope(500, "Internal server error")


HANDLERS = {
    TasksError: _tasks_error,
    ValidationError: _validation_error,
    HTTPException: _http_error,
    Exception: _unexpected,
}
