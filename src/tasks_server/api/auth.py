"""Who is calling: ``Authorization: Bearer <key>`` plus ``X-Tasks-Owner-Id``."""

from __future__ import annotations

import re

from starlette.requests import Request

from ..errors import AuthenticationError
from ..owners import Owners
from ..store import OwnerRow

_KEY_RE = re.compile(r"^Bearer ([a-zA-Z0-9]{64})$")
_OWNER_ID_RE = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")


async def current_owner(request: Request) -> OwnerRow:
    headers = request.headers
    key = _KEY_RE.match(headers.get("authorization", ""))
    owner_id = headers.get("x-tasks-owner-id") or headers.get("x-task-id") or ""
    if key is None or not _OWNER_ID_RE.match(owner_id):
        raise AuthenticationError()
    owners: Owners = request.app.state.owners
    return await owners.authenticate(owner_id, key.group(1))
