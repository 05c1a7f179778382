"""Settings, read once from flags and ``TASKS_*`` environment variables (see ``cli.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 9420
    db: Path = Path(".database/tasks.db")
    owner_queue_limit: int = 1000
    max_body_bytes: int = 32_768
    response_max_bytes: int = 32_768
    max_in_flight: int = 512
    sqlite_synchronous: str = "FULL"
    shutdown_grace_s: float = 10.0
    poll_interval_ms: int = 1000
    log_level: str = "info"
