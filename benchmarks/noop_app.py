"""A do-nothing Starlette endpoint on the server's own stack (uvicorn, httptools, uvloop).

Usage: python benchmarks/noop_app.py --port P

`POST /v1/queues/register` reads the body and answers 201 `{}`. It measures what the web
framework alone costs per request on this machine (ceiling (c)): the part of the registration
budget the server's own code never gets.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def status(request: Request) -> Response:
    return Response(content=b"OK", media_type="text/plain")


async def register(request: Request) -> Response:
    await request.body()
    return Response(content=b"{}", status_code=201, media_type="application/json")


app = Starlette(
    routes=[
        Route("/status", status, methods=["GET"]),
        Route("/v1/queues/register", register, methods=["POST"]),
    ]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
