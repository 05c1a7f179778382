"""A closed-loop HTTP load generator on libcurl's multi interface (pycurl), in one process.

`run_load` keeps `concurrency` requests in flight, each on its own easy handle whose connection
libcurl keeps alive and reuses; a handle that finishes is refilled with the next request at once.
(`CurlMulti.perform` plus `select` drive libcurl: measured here, it costs the generator less CPU
per request than `socket_action` with Python socket and timer callbacks on epoll.)
Requests go to 127.0.0.1 only.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pycurl

RequestFactory = Callable[[int], tuple[str, bytes | None]]
"""Maps a request index to (url, body); a None body sends a GET, bytes a POST."""

LOCAL_PREFIX = "http://127.0.0.1:"
MAX_ERROR_SAMPLES = 5
_SELECT_TIMEOUT_S = 0.05
_MAX_INFO_READS = 100_000


@dataclass
class LoadResult:
    """What one `run_load` call saw."""

    requested: int
    completed: int = 0
    elapsed_s: float = 0.0
    client_cpu_s: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    curl_errors: Counter[int] = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    bodies: dict[int, bytes] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        """Completed requests per second over the whole run."""
        return self.completed / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def errors(self, ok: Sequence[int]) -> int:
        """Requests that did not end with an `ok` status, including unsent and failed ones."""
        good = sum(n for status, n in self.statuses.items() if status in ok)
        return self.requested - good

    def summary(self, ok: Sequence[int]) -> dict[str, object]:
        return {
            "requested": self.requested,
            "completed": self.completed,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 1),
            "errors": self.errors(ok),
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "curl_errors": {str(k): v for k, v in sorted(self.curl_errors.items())},
            "error_samples": self.error_samples,
            "client_cpu_cores": round(self.client_cpu_s / self.elapsed_s, 2)
            if self.elapsed_s > 0
            else 0.0,
        }


class _Slot:
    """One easy handle, its response buffer and the index of the request it carries."""

    def __init__(self, headers: Sequence[str], timeout_s: float) -> None:
        self.index = -1
        self.body = bytearray()
        self.handle = pycurl.Curl()
        h = self.handle
        h.setopt(pycurl.NOSIGNAL, 1)
        h.setopt(pycurl.PROXY, "")
        h.setopt(pycurl.TCP_NODELAY, 1)
        h.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        h.setopt(pycurl.CONNECTTIMEOUT_MS, 5000)
        h.setopt(pycurl.TIMEOUT_MS, int(timeout_s * 1000))
        h.setopt(pycurl.HTTPHEADER, ["Expect:", *headers])
        h.setopt(pycurl.WRITEFUNCTION, self.body.extend)

    def load(self, index: int, url: str, body: bytes | None) -> None:
        if not url.startswith(LOCAL_PREFIX):
            raise ValueError(f"refusing non-local URL {url!r}")
        self.index = index
        self.body.clear()
        self.handle.setopt(pycurl.URL, url)
        if body is None:
            self.handle.setopt(pycurl.HTTPGET, 1)
        else:
            self.handle.setopt(pycurl.POSTFIELDS, body)


@dataclass
class _Run:
    make: RequestFactory
    count: int
    ok: Sequence[int]
    keep_bodies: bool
    multi: pycurl.CurlMulti
    slots: dict[pycurl.Curl, _Slot]
    result: LoadResult
    idle: list[_Slot] = field(default_factory=list)
    next_index: int = 0
    active: int = 0

    def fill(self) -> None:
        while self.idle and self.next_index < self.count:
            slot = self.idle.pop()
            url, body = self.make(self.next_index)
            slot.load(self.next_index, url, body)
            self.multi.add_handle(slot.handle)
            self.next_index += 1
            self.active += 1

    def drive(self) -> None:
        for _ in range(1000):
            ret, _running = self.multi.perform()
            if ret != pycurl.E_CALL_MULTI_PERFORM:
                return

    def harvest(self) -> int:
        finished = 0
        for _ in range(_MAX_INFO_READS):
            queued, done, failed = self.multi.info_read()
            for handle in done:
                self._finish(self.slots[handle], None)
            for handle, errno, message in failed:
                self._finish(self.slots[handle], (errno, message))
            finished += len(done) + len(failed)
            if not queued:
                break
        return finished

    def _finish(self, slot: _Slot, failure: tuple[int, str] | None) -> None:
        self.multi.remove_handle(slot.handle)
        self.idle.append(slot)
        self.active -= 1
        if failure is not None:
            self.result.curl_errors[failure[0]] += 1
            self._sample(f"curl error {failure[0]}: {failure[1]}")
            return
        status = int(slot.handle.getinfo(pycurl.RESPONSE_CODE))
        result = self.result
        result.completed += 1
        result.statuses[status] += 1
        result.latencies_ms.append(slot.handle.getinfo(pycurl.TOTAL_TIME) * 1000.0)
        if status not in self.ok:
            self._sample(f"HTTP {status}: {bytes(slot.body[:300])!r}")
        if self.keep_bodies:
            result.bodies[slot.index] = bytes(slot.body)

    def _sample(self, text: str) -> None:
        if len(self.result.error_samples) < MAX_ERROR_SAMPLES:
            self.result.error_samples.append(text)


def run_load(
    make: RequestFactory,
    count: int,
    *,
    headers: Sequence[str] = (),
    concurrency: int = 64,
    ok: Sequence[int] = (200,),
    keep_bodies: bool = False,
    time_limit_s: float = 600.0,
    request_timeout_s: float = 30.0,
) -> LoadResult:
    """Send `count` requests built by `make`, `concurrency` at a time; stop at `time_limit_s`."""
    result = LoadResult(requested=count)
    if count <= 0:
        return result
    slots = [_Slot(headers, request_timeout_s) for _ in range(min(concurrency, count))]
    run = _Run(
        make=make,
        count=count,
        ok=ok,
        keep_bodies=keep_bodies,
        multi=pycurl.CurlMulti(),
        slots={s.handle: s for s in slots},
        result=result,
        idle=list(slots),
    )
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + time_limit_s
    try:
        _loop(run, deadline)
    finally:
        result.elapsed_s = time.perf_counter() - start
        result.client_cpu_s = time.process_time() - cpu0
        _close(run)
    return result


def _loop(run: _Run, deadline: float) -> None:
    while (run.next_index < run.count or run.active) and time.perf_counter() < deadline:
        run.fill()
        run.drive()
        if run.harvest() == 0 and run.active:
            run.multi.select(_SELECT_TIMEOUT_S)


def _close(run: _Run) -> None:
    for slot in run.slots.values():
        if slot not in run.idle:
            run.multi.remove_handle(slot.handle)
        slot.handle.close()
    run.multi.close()
