"""Reading request bodies within the size limit (413 beyond it), answering JSON."""

from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.responses import Response

from ..errors import TooLarge


async def read_body(request: Request) -> bytes:
    limit: int = request.app.state.settings.max_body_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise TooLarge(f"The request body is larger than {limit} bytes")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise TooLarge(f"The request body is larger than {limit} bytes")
    return body


def json_response(content: object, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")
