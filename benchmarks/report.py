"""The results table: one row per figure, with its target, the same-run ceilings and a verdict."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Row = tuple[str, ...]
HEADER: Row = ("figure", "measured", "target", "ceiling (same run)", "verdict", "other load")

REG_TARGET = 3_000.0
DELIVERY_TARGET = 3_000.0
LATENESS_P99_TARGET = 50.0
RSS_TARGET_MB = 300.0
TREND_TARGET = 0.85
_LABELS = {"bare": "(a) bare", "sink": "(b) sink", "framework": "(c) no-op Starlette"}
_MACHINE_KEYS = ("machine", "steal", "other", "other_top")


def _n(value: float) -> str:
    return f"{value:,.0f}"


def _at_least(value: float, target: float) -> str:
    return "PASS" if value >= target else f"MISS by {100 * (1 - value / target):.0f} %"


def _at_most(value: float, target: float) -> str:
    return "PASS" if value <= target else f"MISS by {100 * (value / target - 1):.0f} %"


def _overran(r: dict[str, Any], verdict: str) -> str:
    """Flag a timing verdict when registering the tasks ran past their due time."""
    margin = r.get("registration_margin_ms", 0)
    return (
        f"{verdict} (INVALID: registration ended {-margin} ms after due)" if margin < 0 else verdict
    )


def _ceiling_text(results: dict[str, Any], which: str) -> str:
    ceiling = results.get("ceilings", {}).get(which)
    if not ceiling or "rate_per_s" not in ceiling:
        return "n/a"
    text = f"{_LABELS[which]} {_n(ceiling['rate_per_s'])}/s"
    framework = results.get("ceilings", {}).get("framework", {})
    if which == "bare" and "rate_per_s" in framework:
        text += f"; {_LABELS['framework']} {_n(framework['rate_per_s'])}/s"
    return text


def _ceiling_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for which, name in (
        ("bare", "ceiling (a): loadgen → bare endpoint"),
        ("sink", "ceiling (b): libcurl multi → sink"),
        ("framework", "ceiling (c): loadgen → no-op Starlette/uvicorn endpoint"),
    ):
        c = r.get(which, {})
        if "rate_per_s" in c:
            cpu = c.get("cpu_cores", {})
            cores = ", ".join(f"{k} {cpu[k]}" for k in cpu if k not in _MACHINE_KEYS)
            rows.append(
                (
                    name,
                    f"{_n(c['rate_per_s'])} req/s (cores: {cores})",
                    "—",
                    "—",
                    f"errors {c['errors']}",
                    f"{cpu.get('other', '—')} cores",
                )
            )
    return rows


def _registration_rows(r: dict[str, Any], ceil: str) -> list[Row]:
    lat = r["latency_ms"]
    return [
        (
            "registrations/s",
            f"{_n(r['rate_per_s'])}/s",
            "≥ 3,000/s",
            ceil,
            _at_least(r["rate_per_s"], REG_TARGET),
        ),
        ("registration latency p50 / p99", f"{lat['p50']} / {lat['p99']} ms", "—", "—", "—"),
        ("registration errors", str(r["errors"]), "0", "—", "PASS" if r["errors"] == 0 else "FAIL"),
    ]


def _delivery_rows(r: dict[str, Any], ceil: str) -> list[Row]:
    flow = r.get("throughput", {})
    rate = flow.get("per_s_due_to_last", 0.0)
    complete = r["missing"] == 0 and r["duplicates"] == 0 and r["unexpected_ids"] == 0
    return [
        (
            "deliveries/s (due → last arrival)",
            f"{_n(rate)}/s",
            "≥ 3,000/s",
            ceil,
            _overran(r, _at_least(rate, DELIVERY_TARGET)),
        ),
        (
            "deliveries/s (10 % → 90 % of arrivals)",
            f"{_n(flow.get('per_s_10_to_90pct', 0))}/s",
            "—",
            ceil,
            "—",
        ),
        (
            "delivered distinct / missing / duplicates",
            f"{_n(r['distinct_ids_received'])} / {r['missing']} / {r['duplicates']}",
            f"{_n(r['expected'])} / 0 / 0",
            "—",
            "PASS" if complete else "FAIL",
        ),
    ]


def _lateness_rows(r: dict[str, Any], ceil: str) -> list[Row]:
    lat = r["lateness_ms"]
    if not lat.get("n"):
        return [("fire lateness", "nothing arrived", "p99 ≤ 50 ms", ceil, "FAIL")]
    text = f"{lat['p50']} / {lat['p90']} / {lat['p99']} / {lat['max']} ms"
    ok = r["missing"] == 0 and r["early"] == 0
    return [
        (
            f"fire lateness p50/p90/p99/max at {_n(r['rate_per_s'])} due/s",
            text,
            "p99 ≤ 50 ms",
            ceil,
            _overran(r, _at_most(lat["p99"], LATENESS_P99_TARGET)),
        ),
        (
            "lateness run: missing / early / duplicates",
            f"{r['missing']} / {r['early']} / {r['duplicates']}",
            "0 / 0 / 0",
            "—",
            "PASS" if ok and r["duplicates"] == 0 else "FAIL",
        ),
    ]


def _pending_rows(r: dict[str, Any], ceil: str) -> list[Row]:
    trend = r["last2_over_first2"]
    return [
        (
            f"registrations/s per {_n(r['chunk'])} chunk, first → last",
            f"{_n(r['first_rate_per_s'])} → {_n(r['last_rate_per_s'])} (last2/first2 {trend})",
            "no fall (≥ 0.85)",
            ceil,
            "PASS" if trend >= TREND_TARGET else "FAIL",
        ),
        (
            f"server RSS with {_n(r['tasks_in_queue'])} pending",
            f"{r['rss_mb']} MB (peak {r['peak_rss_mb']} MB)",
            "< 300 MB",
            "—",
            _at_most(r["rss_mb"], RSS_TARGET_MB),
        ),
        ("database size on disk", f"{r['db_total_mb']} MB", "—", "—", "—"),
    ]


_BUILDERS: dict[str, tuple[str, Callable[[dict[str, Any], str], list[Row]]]] = {
    "registrations": ("bare", _registration_rows),
    "deliveries": ("sink", _delivery_rows),
    "lateness": ("sink", _lateness_rows),
    "pending": ("bare", _pending_rows),
}


def rows(results: dict[str, Any]) -> list[Row]:
    scenarios = results.get("scenarios", {})
    out = _ceiling_rows(results.get("ceilings", {}))
    for name, (which, build) in _BUILDERS.items():
        if name not in scenarios:
            continue
        data = scenarios[name]
        if "error" in data:
            out.append((name, "ERROR: " + str(data["error"])[:160], "—", "—", "FAIL", "—"))
            continue
        other = _other_load(data)
        out.extend((*row, other) for row in build(data, _ceiling_text(results, which)))
    return out


def _other_load(data: dict[str, Any]) -> str:
    """Cores busy outside the benchmark's own processes during the measured window."""
    cpu = data.get("cpu_cores") or {}
    return f"{cpu['other']} cores" if "other" in cpu else "—"


def markdown(table: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in table]
    return "\n".join(lines)


def profiles(results: dict[str, Any], top: int = 10) -> str:
    """The py-spy summaries of a profiled run, as text."""
    out: list[str] = []
    for name, data in results.get("scenarios", {}).items():
        prof = data.get("profile") if isinstance(data, dict) else None
        if not prof or not prof.get("samples"):
            continue
        out.append(f"py-spy, server during {name} ({prof['samples']} samples):")
        threads = ", ".join(f"{t} {p} %" for t, p in prof["threads_pct"])
        out.append(f"  threads: {threads}")
        out.append("  top self:")
        out += [f"    {p:5.1f} %  {f}" for f, p in prof["top_self_pct"][:top]]
        out.append("  top inclusive (tasks_server code):")
        out += [f"    {p:5.1f} %  {f}" for f, p in prof["top_inclusive_pct"][:top]]
    return "\n".join(out)
