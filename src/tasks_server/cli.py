"""``tasks-server``: the command line. Every flag can also come from a ``TASKS_*`` variable."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer
import uvicorn

from .config import Settings

cli = typer.Typer(help="Tasks Server: fire HTTP requests later, reliably.", no_args_is_help=True)


@cli.callback()
def _main() -> None:
    """Tasks Server: fire HTTP requests later, reliably."""


def _option(env: str, help: str) -> typer.models.OptionInfo:
    return typer.Option(envvar=env, help=help)  # type: ignore[no-any-return]


@cli.command()
def serve(
    host: Annotated[str, _option("TASKS_HOST", "Address to listen on")] = "127.0.0.1",
    port: Annotated[int, _option("TASKS_PORT", "Port to listen on")] = 9420,
    db: Annotated[Path, _option("TASKS_DB", "SQLite file; parent folders are created")] = Path(
        ".database/tasks.db"
    ),
    owner_queue_limit: Annotated[
        int, _option("TASKS_OWNER_QUEUE_LIMIT", "Unfinished tasks an owner may hold")
    ] = 1000,
    max_body_bytes: Annotated[
        int, _option("TASKS_MAX_BODY_BYTES", "Largest request body accepted")
    ] = 32_768,
    response_max_bytes: Annotated[
        int, _option("TASKS_RESPONSE_MAX_BYTES", "Bytes of a target's answer kept")
    ] = 32_768,
    max_in_flight: Annotated[
        int, _option("TASKS_MAX_IN_FLIGHT", "Deliveries in flight at once")
    ] = 512,
    sqlite_synchronous: Annotated[
        str,
        _option(
            "TASKS_SQLITE_SYNCHRONOUS",
            "FULL: an acknowledged task survives power loss; NORMAL: only a process crash",
        ),
    ] = "FULL",
    shutdown_grace: Annotated[
        float, _option("TASKS_SHUTDOWN_GRACE", "Seconds in-flight deliveries get at shutdown")
    ] = 10.0,
    log_level: Annotated[str, _option("TASKS_LOG_LEVEL", "debug, info, warning, error")] = "info",
) -> None:
    """Start the API and the dispatcher in one process."""
    if sqlite_synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
        raise typer.BadParameter("must be FULL, NORMAL or EXTRA", param_hint="--sqlite-synchronous")
    settings = Settings(
        host=host,
        port=port,
        db=db,
        owner_queue_limit=owner_queue_limit,
        max_body_bytes=max_body_bytes,
        response_max_bytes=response_max_bytes,
        max_in_flight=max_in_flight,
        sqlite_synchronous=sqlite_synchronous.upper(),
        shutdown_grace_s=shutdown_grace,
        log_level=log_level,
    )
    run(settings)


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def run(settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then shut down gracefully and exit with status 0."""
    from .app import create_app

    # uvicorn re-raises the signal it handled once it has shut down; end with 0 then.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        proxy_headers=False,
        server_header=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=int(settings.shutdown_grace_s) or None,
    )


def main() -> None:
    cli()
