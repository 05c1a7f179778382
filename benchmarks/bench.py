"""What every scenario shares: sizes, the sink, the server lifecycle and registration helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client import DAY_MS, Owner, call, now_ms, register_owner, task_body
from loadgen import LoadResult, run_load
from procs import Service, free_port, launch, server_argv
from pyspy import Profile
from sink import Records, read_records

QUEUE_LIMIT = 2_000_000
CREATED = (201,)
POLL_S = 0.1
STALL_S = 30.0


@dataclass(frozen=True)
class Sizes:
    """How much work each scenario does."""

    ceiling_requests: int
    registrations: int
    deliveries: int
    lateness_rate: int
    lateness_window_s: int
    pending_total: int
    pending_chunk: int
    warmup: int


FULL = Sizes(100_000, 30_000, 30_000, 1_000, 20, 1_000_000, 100_000, 2_000)
QUICK = Sizes(30_000, 10_000, 10_000, 1_000, 10, 100_000, 10_000, 1_000)


@dataclass
class Bench:
    """One benchmark run: its sizes, directories, the sink, and per-server notes."""

    sizes: Sizes
    concurrency: int
    db_root: Path
    out_dir: Path
    sink: Service
    profile: bool = False
    server_args: list[str] = field(default_factory=list)
    servers: dict[str, dict[str, Any]] = field(default_factory=dict)

    # --- the sink -------------------------------------------------------------------------
    @property
    def sink_hit_url(self) -> str:
        return f"{self.sink.base_url}/hit"

    def _sink_control(self, route: str) -> str:
        status, body = call("GET", f"{self.sink.base_url}/_sink/{route}", timeout_s=60.0)
        if status != 200:
            raise RuntimeError(f"sink /_sink/{route} answered {status}: {body!r}")
        return body.decode()

    def sink_count(self) -> int:
        return int(self._sink_control("count"))

    def sink_connections(self) -> int:
        """Connections that carried recorded requests, accepted since the sink started."""
        return int(self._sink_control("connections"))

    def sink_reset(self) -> None:
        self._sink_control("reset")

    def sink_dump(self, name: str) -> Records:
        self._sink_control(f"dump?name={name}")
        return read_records(self.out_dir / f"{name}.tsv")

    def wait_for_sink(self, expected: int, deadline_ms: int) -> int:
        """Poll the sink until it holds `expected` records, stalls for STALL_S, or the deadline."""
        count = last = self.sink_count()
        last_change = time.monotonic()
        while count < expected and now_ms() < deadline_ms:
            time.sleep(POLL_S)
            count = self.sink_count()
            if count != last:
                last, last_change = count, time.monotonic()
            elif count > 0 and time.monotonic() - last_change > STALL_S:
                break
        return count

    # --- the server -----------------------------------------------------------------------
    @contextmanager
    def server(self, name: str, queue_limit: int = QUEUE_LIMIT) -> Iterator[Service]:
        """A fresh server on its own database for one scenario."""
        db_dir = self.db_root / name
        db_dir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        argv = server_argv(port, db_dir / "tasks.db", queue_limit) + self.server_args
        service = launch(f"server-{name}", argv, port, self.out_dir, "/status")
        try:
            yield service
        finally:
            code = service.stop()
            self.servers[name] = {
                "argv": argv,
                "exit_code": code,
                "log": str(service.log_path),
                "log_problems": service.log_problems(),
            }

    def profiler(self, service: Service, name: str) -> Profile | None:
        if not self.profile:
            return None
        profile = Profile(service.pid, self.out_dir / f"pyspy-{name}.txt")
        profile.start()
        return profile

    # --- registrations --------------------------------------------------------------------
    def register(
        self,
        owner: Owner,
        body_of: Callable[[int], bytes],
        count: int,
        keep_bodies: bool = False,
    ) -> LoadResult:
        """`count` registrations through the HTTP API, `concurrency` in flight."""
        url = owner.register_url
        return run_load(
            lambda i: (url, body_of(i)),
            count,
            headers=owner.curl_headers(),
            concurrency=self.concurrency,
            ok=CREATED,
            keep_bodies=keep_bodies,
            time_limit_s=60.0 + count / 200.0,
        )

    def owner_and_warm_up(self, service: Service) -> tuple[Owner, LoadResult]:
        """Register the owner, then `warmup` far-future tasks; their rate sizes later leads."""
        owner = register_owner(service.base_url)
        far = now_ms() + 30 * DAY_MS
        warm = self.register(
            owner, lambda i: task_body(self.sink_hit_url, far + i), self.sizes.warmup
        )
        return owner, warm


def lead_ms(count: int, rate_per_s: float) -> int:
    """Time to allow for registering `count` tasks at the warm-up rate, with margin."""
    rate = max(rate_per_s, 200.0)
    return int(min(600.0, count / rate * 1.5 + 3.0) * 1000)


def sleep_until(when_ms: int) -> None:
    delay = (when_ms - now_ms()) / 1000.0
    if delay > 0:
        time.sleep(delay)


def wait_drained(owner: Owner, baseline: int, deadline_ms: int) -> int | None:
    """Poll until the owner's unfinished-task count is back to `baseline`; when (ms) or None."""
    while now_ms() < deadline_ms:
        if owner.tasks_in_queue() <= baseline:
            return now_ms()
        time.sleep(0.2)
    return None
