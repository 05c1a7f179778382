"""Optional sampling profile of the server with py-spy (`run.py --profile`).

py-spy records raw collapsed stacks, one thread per root frame, while a scenario's measured
window runs; `summarize` reduces them to the share of samples per thread and the functions with
the most self and inclusive time. The profiler costs CPU on a 2-core machine, so figures from a
profiled run are not the ones to quote.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")
TOP = 15
_ENTRY_POINTS = ("tasks_server/__main__.py", "tasks_server/cli.py")


def executable() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


class Profile:
    """A py-spy recording of one process, started and stopped around a window."""

    def __init__(self, pid: int, out: Path, rate: int = 100) -> None:
        self._pid = pid
        self._out = out
        self._rate = rate
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        exe = executable()
        if exe is None:
            raise RuntimeError("py-spy not found; pip install py-spy")
        argv = [exe, "record", "--pid", str(self._pid), "--format", "raw", "--threads"]
        argv += ["--nonblocking", "--rate", str(self._rate), "--duration", "900"]
        argv += ["--output", str(self._out)]
        self._popen = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL
        )

    def stop(self) -> dict[str, object]:
        """Stop recording (SIGINT makes py-spy write its output) and summarize."""
        if self._popen is None:
            return {}
        if self._popen.poll() is None:
            self._popen.send_signal(signal.SIGINT)
            try:
                self._popen.wait(30)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(5)
        if not self._out.exists():
            return {"error": "py-spy wrote nothing"}
        return {"raw": str(self._out), **summarize(self._out)}


def _function(frame: str) -> str:
    """`name (path/to/file.py:123)` -> `name (to/file.py)`: one key per function."""
    head, _, location = frame.partition(" (")
    location = _LINE.sub(")", "(" + location) if location else ""
    parts = location.strip("()").split("/")
    return f"{head} ({'/'.join(parts[-2:])})" if location else head


def _is_project(frame: str) -> bool:
    """A frame of the server's own code below its entry points (those are in every stack)."""
    return "tasks_server/" in frame and not any(e in frame for e in _ENTRY_POINTS)


def _shares(counter: Counter[str], total: int) -> list[tuple[str, float]]:
    return [(name, round(100.0 * n / total, 1)) for name, n in counter.most_common(TOP)]


def summarize(raw: Path) -> dict[str, object]:
    """Per-thread shares, top self functions, and the server's own functions by inclusive
    time (entry points left out), in % of all samples."""
    threads: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        threads[frames[0].split(": ", 1)[-1]] += n
        functions = [_function(f) for f in frames[1:]]
        if functions:
            own[functions[-1]] += n
        for name in {_function(f) for f in frames[1:] if _is_project(f)}:
            inclusive[name] += n
    if total == 0:
        return {"samples": 0}
    return {
        "samples": total,
        "threads_pct": _shares(threads, total),
        "top_self_pct": _shares(own, total),
        "top_inclusive_pct": _shares(inclusive, total),
    }
