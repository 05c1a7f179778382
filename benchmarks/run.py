"""Benchmark the Tasks Server: one command starts everything, measures, and reports.

    python benchmarks/run.py [--quick] [--only NAME] [--concurrency N] [--profile]
                             [--server-arg ARG ...]

It starts a recording sink, then for each scenario a fresh server on a temporary database, and
measures the same-run ceilings (load generator against a do-nothing endpoint, libcurl multi
against the sink) beside every figure. It prints a results table and writes
benchmarks/results/run-<stamp>.json; server logs and sink dumps go to
benchmarks/results/run-<stamp>/. All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from bench import FULL, QUICK, Bench
from machine import describe
from procs import BENCH_DIR, Service, background_cores, free_port, launch, python_script
from report import markdown, profiles, rows
from scenarios import SCENARIOS, ceilings

RESULTS_DIR = BENCH_DIR / "results"
BUSY_WARNING = 0.2  # cores busy on the machine before the run that are worth a warning


def _parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Tasks Server benchmarks")
    parser.add_argument("--quick", action="store_true", help="smaller counts, about 2 minutes")
    parser.add_argument("--only", choices=sorted(SCENARIOS), help="one scenario (plus ceilings)")
    parser.add_argument("--concurrency", type=int, default=64, help="requests in flight")
    parser.add_argument("--profile", action="store_true", help="py-spy the server (skews figures)")
    parser.add_argument(
        "--server-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra argument for `tasks_server serve`, repeatable: --server-arg=--log-level=debug",
    )
    return parser.parse_args()


def _server_installed() -> bool:
    probe = subprocess.run(
        [sys.executable, "-m", "tasks_server", "serve", "--help"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    return probe.returncode == 0


def _guarded(name: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    print(f"== {name}", flush=True)
    started = time.perf_counter()
    try:
        result = fn()
    except Exception as exc:  # a failed scenario is reported, the others still run
        result = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        print(result["traceback"], file=sys.stderr, flush=True)
    result["scenario_seconds"] = round(time.perf_counter() - started, 1)
    return result


def _start_sink(out_dir: Path) -> Service:
    port = free_port()
    argv = python_script("sink.py", "--port", str(port), "--out", str(out_dir))
    return launch("sink", argv, port, out_dir, "/_sink/count")


def _run(args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    sizes = QUICK if args.quick else FULL
    names = [args.only] if args.only else list(SCENARIOS)
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "machine": describe(BENCH_DIR.parent),
        "sizes": sizes.__dict__,
        "concurrency": args.concurrency,
        "profiled": args.profile,
        "server_args": args.server_arg,
        "scenarios": {},
    }
    quiet = background_cores()
    results["background_cores_before"] = quiet
    if quiet["machine"] > BUSY_WARNING:
        print(f"warning: the machine is busy before the run: {quiet}", flush=True)
    sink = _start_sink(out_dir)
    with tempfile.TemporaryDirectory(prefix="tasks-bench-") as tmp:
        bench = Bench(
            sizes, args.concurrency, Path(tmp), out_dir, sink, args.profile, args.server_arg
        )
        try:
            results["ceilings"] = _guarded("ceilings", lambda: ceilings(bench))
            installed = _server_installed()
            for name in names:
                if not installed:
                    results["scenarios"][name] = {"error": "tasks_server is not installed"}
                    continue
                scenario = SCENARIOS[name]
                results["scenarios"][name] = _guarded(name, partial(scenario, bench))
        finally:
            sink.stop()
            results["servers"] = bench.servers
    return results


def main() -> None:
    args = _parse()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS_DIR / f"run-{stamp}"
    out_dir.mkdir(parents=True, exist_ok=True)
    results = _run(args, out_dir)
    results["table"] = rows(results)
    path = RESULTS_DIR / f"run-{stamp}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))
    print()
    print(markdown(results["table"]))
    if args.profile:
        print()
        print(profiles(results))
    print(f"\nresults: {path}\nlogs and sink dumps: {out_dir}")


if __name__ == "__main__":
    main()
