"""The five scenarios. Each takes the run's `Bench` and answers a JSON-able dict."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from bench import CREATED, Bench, lead_ms, sleep_until, wait_drained
from client import DAY_MS, Owner, now_ms, task_body, task_ids
from loadgen import run_load
from procs import (
    CpuMeter,
    dir_sizes,
    free_port,
    launch,
    peak_rss_bytes,
    python_script,
    rss_bytes,
    thread_count,
)
from sink import Records
from stats import distribution, per_second, percentile

MB = 1024 * 1024
STATE_SAMPLE = 200
# Due times are whole milliseconds; an arrival up to 1 ms before one is rounding, not early.
EARLY_TOLERANCE_MS = 1.0
# Header lines of the same size as a registration's, for the ceiling runs.
LOOKALIKE_HEADERS = [
    "Authorization: Bearer " + "k" * 64,
    "X-Tasks-Owner-Id: " + "0" * 26,
    "Content-Type: application/json",
]


# --- 1. ceilings ---------------------------------------------------------------------------
def ceilings(b: Bench) -> dict[str, Any]:
    """(a) load generator -> do-nothing endpoint; (b) libcurl multi -> sink (the delivery
    ceiling); (c) load generator -> a no-op endpoint on the server's web stack."""
    return {
        "bare": _ceiling_endpoint(b, "bare", "bare.py", "/", 200, b.sizes.ceiling_requests),
        "sink": _ceiling_sink(b),
        "framework": _ceiling_endpoint(
            b, "framework", "noop_app.py", "/status", 201, b.sizes.registrations
        ),
    }


def _ceiling_endpoint(
    b: Bench, name: str, script: str, ready: str, ok: int, count: int
) -> dict[str, Any]:
    """The load generator posting `count` registration-sized requests to a helper endpoint."""
    port = free_port()
    helper = launch(name, python_script(script, "--port", str(port)), port, b.out_dir, ready)
    try:
        body = task_body(b.sink_hit_url, now_ms() + DAY_MS)
        url = f"{helper.base_url}/v1/queues/register"
        meter = CpuMeter({name: helper.pid})
        meter.start()
        result = run_load(
            lambda i: (url, body),
            count,
            headers=LOOKALIKE_HEADERS,
            concurrency=b.concurrency,
            ok=(ok,),
        )
        return {**result.summary((ok,)), "cpu_cores": meter.stop()}
    finally:
        helper.stop()


def _ceiling_sink(b: Bench) -> dict[str, Any]:
    b.sink_reset()
    headers = [f"X-Due-At: {now_ms()}", "X-Tasks-Queue-Id: " + "0" * 24]
    url = b.sink_hit_url
    meter = CpuMeter({"sink": b.sink.pid})
    connections = b.sink_connections()
    meter.start()
    result = run_load(
        lambda i: (url, b""), b.sizes.ceiling_requests, headers=headers, concurrency=b.concurrency
    )
    cpu = meter.stop()
    connections = b.sink_connections() - connections
    recorded = b.sink_count()
    b.sink_reset()
    return {
        **result.summary((200,)),
        "cpu_cores": cpu,
        "sink_recorded": recorded,
        "sink_connections_opened": connections,
    }


# --- 2. registrations ----------------------------------------------------------------------
def registrations(b: Bench) -> dict[str, Any]:
    """Concurrent registrations of far-future tasks through the HTTP API."""
    count = b.sizes.registrations
    with b.server("registrations") as server:
        owner, warm = b.owner_and_warm_up(server)
        far = now_ms() + 60 * DAY_MS
        meter = CpuMeter({"server": server.pid})
        profile = b.profiler(server, "registrations")
        meter.start()
        result = b.register(owner, lambda i: task_body(b.sink_hit_url, far + i), count)
        cpu = meter.stop()
        profiled = profile.stop() if profile else None
        in_queue = owner.tasks_in_queue()
        threads = thread_count(server.pid)
    return {
        **result.summary(CREATED),
        "warmup_rate_per_s": round(warm.rate, 1),
        "latency_ms": distribution(result.latencies_ms),
        "cpu_cores": cpu,
        "server_threads": threads,
        "tasks_in_queue_after": in_queue,
        "tasks_in_queue_expected": b.sizes.warmup + count,
        "profile": profiled,
    }


# --- 3. deliveries -------------------------------------------------------------------------
def deliveries(b: Bench) -> dict[str, Any]:
    """Many tasks due at one instant: from that instant until the sink has them all."""
    count = b.sizes.deliveries
    with b.server("deliveries") as server:
        owner, warm = b.owner_and_warm_up(server)
        due = now_ms() + lead_ms(count, warm.rate)
        b.sink_reset()
        reg = b.register(owner, lambda i: task_body(b.sink_hit_url, due), count, keep_bodies=True)
        registered_ms = now_ms()
        ids = task_ids(reg.bodies)
        sleep_until(due)
        meter = CpuMeter({"server": server.pid, "sink": b.sink.pid})
        profile = b.profiler(server, "deliveries")
        connections = b.sink_connections()
        meter.start()
        b.wait_for_sink(len(ids), due + int(max(60.0, min(600.0, count / 100.0)) * 1000))
        cpu = meter.stop()
        connections = b.sink_connections() - connections
        profiled = profile.stop() if profile else None
        drained = wait_drained(owner, b.sizes.warmup, now_ms() + 60_000)
        time.sleep(1.0)  # late duplicates, if any, arrive in the dump
        records = b.sink_dump("deliveries")
        states = _sample_states(owner, ids)
    return {
        "registration": reg.summary(CREATED),
        "registration_margin_ms": due - registered_ms,
        **_arrivals(records, ids, lambda _tid, _due: due),
        "sink_connections_opened": connections,
        "store_drained_ms_after_due": None if drained is None else drained - due,
        "sampled_states": states,
        "cpu_cores": cpu,
        "profile": profiled,
    }


def _sample_states(owner: Owner, ids: list[str]) -> dict[str, int]:
    """States of up to STATE_SAMPLE tasks spread over `ids`."""
    if not ids:
        return {}
    step = max(1, len(ids) // STATE_SAMPLE)
    sample = ids[::step][:STATE_SAMPLE]
    base = f"{owner.base_url}/v1/queues/"
    result = run_load(
        lambda i: (base + sample[i], None),
        len(sample),
        headers=owner.curl_headers(),
        concurrency=16,
        keep_bodies=True,
    )
    states: Counter[str] = Counter()
    for body in result.bodies.values():
        try:
            states[str(orjson.loads(body).get("state"))] += 1
        except (orjson.JSONDecodeError, AttributeError):
            states["<unparsable>"] += 1
    states["<no answer>"] += len(sample) - len(result.bodies)
    return {k: v for k, v in states.items() if v}


def _arrivals(
    records: Records, ids: list[str], due_of: Callable[[str, int], int]
) -> dict[str, Any]:
    """Completeness and timing of the first arrival of each registered task."""
    expected = set(ids)
    first: dict[str, tuple[float, int]] = {}
    for recv, due, tid in zip(records.recv_ms, records.due_ms, records.ids, strict=True):
        if tid in expected and tid not in first:
            first[tid] = (recv, due_of(tid, due))
    received = set(records.ids)
    late = [recv - due for recv, due in first.values()]
    arrivals = sorted(recv for recv, _ in first.values())
    return {
        "expected": len(expected),
        "requests_received": len(records),
        "distinct_ids_received": len(received),
        "missing": len(expected) - len(first),
        "unexpected_ids": len(received - expected),
        "duplicates": len(records) - len(received),
        "early": sum(1 for x in late if x < -EARLY_TOLERANCE_MS),
        "lateness_ms": distribution(late),
        "throughput": _throughput(arrivals, min((d for _, d in first.values()), default=0)),
    }


def _throughput(arrivals: list[float], due: int) -> dict[str, Any]:
    if not arrivals:
        return {}
    n = len(arrivals)
    t10, t90 = percentile(arrivals, 10), percentile(arrivals, 90)
    per_sec = Counter(int((t - due) // 1000) for t in arrivals)
    return {
        "first_ms_after_due": round(arrivals[0] - due, 1),
        "last_ms_after_due": round(arrivals[-1] - due, 1),
        "per_s_due_to_last": per_second(n, arrivals[-1] - due),
        "per_s_10_to_90pct": per_second(0.8 * n, t90 - t10),
        "per_second_after_due": [per_sec[s] for s in range(min(max(per_sec) + 1, 600))],
    }


# --- 4. lateness ---------------------------------------------------------------------------
def lateness(b: Bench) -> dict[str, Any]:
    """Tasks due at a steady rate, registered before the window: arrival - due per task."""
    rate, window_s = b.sizes.lateness_rate, b.sizes.lateness_window_s
    count = rate * window_s
    with b.server("lateness") as server:
        owner, warm = b.owner_and_warm_up(server)
        start = now_ms() + lead_ms(count, warm.rate)
        b.sink_reset()
        reg = b.register(
            owner,
            lambda i: task_body(b.sink_hit_url, start + i * 1000 // rate),
            count,
            keep_bodies=True,
        )
        registered_ms = now_ms()
        ids = task_ids(reg.bodies)
        sleep_until(start)
        meter = CpuMeter({"server": server.pid, "sink": b.sink.pid})
        profile = b.profiler(server, "lateness")
        connections = b.sink_connections()
        meter.start()
        b.wait_for_sink(len(ids), start + window_s * 1000 + 30_000)
        cpu = meter.stop()
        profiled = profile.stop() if profile else None
        connections = b.sink_connections() - connections
        time.sleep(1.0)
        records = b.sink_dump("lateness")
    summary = _arrivals(records, ids, lambda _tid, due: due)
    return {
        "rate_per_s": rate,
        "window_s": window_s,
        "registration": reg.summary(CREATED),
        "registration_margin_ms": start - registered_ms,
        **{k: v for k, v in summary.items() if k != "throughput"},
        "worst_second_p99_ms": _worst_second(records, set(ids)),
        "sink_connections_opened": connections,
        "cpu_cores": cpu,
        "profile": profiled,
    }


def _worst_second(records: Records, expected: set[str]) -> float:
    """The highest per-second p99 lateness, seconds keyed by due time."""
    buckets: dict[int, list[float]] = {}
    for recv, due, tid in zip(records.recv_ms, records.due_ms, records.ids, strict=True):
        if tid in expected and due >= 0:
            buckets.setdefault(due // 1000, []).append(recv - due)
    worst = [percentile(sorted(v), 99) for v in buckets.values() if v]
    return round(max(worst), 1) if worst else math.nan


# --- 5. a million pending tasks ------------------------------------------------------------
def pending(b: Bench) -> dict[str, Any]:
    """Register `pending_total` future tasks in chunks; then the server's memory and disk."""
    total, chunk = b.sizes.pending_total, b.sizes.pending_chunk
    db_dir = b.db_root / "pending"
    with b.server("pending") as server:
        owner, _warm = b.owner_and_warm_up(server)
        rss_empty = rss_bytes(server.pid)
        meter = CpuMeter({"server": server.pid})
        meter.start()
        chunks = _register_chunks(b, owner, total, chunk, server.pid)
        cpu = meter.stop()
        time.sleep(2.0)
        memory = {
            "rss_mb": round(rss_bytes(server.pid) / MB, 1),
            "peak_rss_mb": round(peak_rss_bytes(server.pid) / MB, 1),
            "rss_before_mb": round(rss_empty / MB, 1),
        }
        in_queue = owner.tasks_in_queue()
    files = dir_sizes(db_dir)
    rates = [c["rate_per_s"] for c in chunks]
    return {
        "total": total,
        "chunk": chunk,
        "chunks": chunks,
        "first_rate_per_s": rates[0] if rates else 0.0,
        "last_rate_per_s": rates[-1] if rates else 0.0,
        "last2_over_first2": _trend(rates),
        **memory,
        "tasks_in_queue": in_queue,
        "cpu_cores": cpu,
        "db_files_bytes": files,
        "db_total_mb": round(sum(files.values()) / MB, 1),
    }


def _register_chunks(
    b: Bench, owner: Owner, total: int, chunk: int, server_pid: int
) -> list[dict[str, Any]]:
    base = now_ms() + 30 * DAY_MS
    chunks: list[dict[str, Any]] = []
    for offset in range(0, total, chunk):
        count = min(chunk, total - offset)
        meter = CpuMeter({"server": server_pid})
        meter.start()
        result = b.register(owner, _spread(b.sink_hit_url, base + offset * 1000), count)
        chunks.append(
            {
                "done": offset + count,
                "rate_per_s": round(result.rate, 1),
                "cpu_cores": meter.stop(),
                "errors": result.errors(CREATED),
                "latency_ms": distribution(result.latencies_ms),
                "error_samples": result.error_samples,
            }
        )
        other = chunks[-1]["cpu_cores"]["other"]
        print(
            f"  pending: {offset + count:,} registered, {result.rate:,.0f}/s"
            f" (other load {other} cores)",
            flush=True,
        )
        if result.errors(CREATED) > count // 10:
            break
    return chunks


def _spread(url: str, first_ms: int) -> Callable[[int], bytes]:
    return lambda i: task_body(url, first_ms + i * 1000)


def _trend(rates: list[float]) -> float:
    """Mean rate of the last two chunks over that of the first two."""
    if len(rates) < 2:
        return math.nan
    head, tail = rates[:2], rates[-2:]
    return round((sum(tail) / len(tail)) / (sum(head) / len(head)), 3) if sum(head) else math.nan


SCENARIOS: dict[str, Callable[[Bench], dict[str, Any]]] = {
    "registrations": registrations,
    "deliveries": deliveries,
    "lateness": lateness,
    "pending": pending,
}
