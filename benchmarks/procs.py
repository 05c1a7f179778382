"""Child processes of a benchmark run (server, sink, bare endpoint) and what they cost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from client import call

BENCH_DIR = Path(__file__).resolve().parent
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    """A child process serving HTTP on 127.0.0.1:port, its output going to `log_path`."""

    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path
    exit_code: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after STOP_TIMEOUT_S; answers the exit code (None if killed)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
                self.exit_code = None
                return None
        self.exit_code = self.popen.returncode
        return self.exit_code

    def log_problems(self, limit: int = 20) -> list[str]:
        """Lines of the log that look like errors (tracebacks, ERROR, CRITICAL)."""
        if not self.log_path.exists():
            return []
        marks = ("Traceback", "ERROR", "CRITICAL", "Exception")
        with self.log_path.open(errors="replace") as fh:
            hits = [line.rstrip() for line in fh if any(m in line for m in marks)]
        return hits[:limit]


def launch(name: str, argv: list[str], port: int, log_dir: Path, ready_path: str) -> Service:
    """Start `argv` and wait until GET ready_path answers 200."""
    log_path = log_dir / f"{name}.log"
    with log_path.open("wb") as log:
        popen = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=BENCH_DIR
        )
    service = Service(name=name, popen=popen, port=port, log_path=log_path)
    try:
        _wait_ready(service, ready_path)
    except Exception:
        service.stop()
        raise
    return service


def _wait_ready(service: Service, path: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(
                f"{service.name} exited with {service.popen.returncode} before it was ready; "
                f"see {service.log_path}"
            )
        try:
            status, _ = call("GET", f"{service.base_url}{path}", timeout_s=2.0)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(
        f"{service.name} not ready after {READY_TIMEOUT_S} s; see {service.log_path}"
    )


def python_script(script: str, *args: str) -> list[str]:
    return [sys.executable, str(BENCH_DIR / script), *args]


def server_argv(port: int, db_path: Path, queue_limit: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tasks_server",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--db",
        str(db_path),
        "--owner-queue-limit",
        str(queue_limit),
    ]


def _tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children (live ones)."""
    total = 0.0
    for proc in _tree(pid):
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its children."""
    total = 0
    for proc in _tree(pid):
        try:
            total += int(proc.memory_info().rss)
        except psutil.NoSuchProcess:
            continue
    return total


def peak_rss_bytes(pid: int) -> int:
    """VmHWM (peak resident set) of the process itself, from /proc."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def thread_count(pid: int) -> int:
    return int(psutil.Process(pid).num_threads())


def dir_sizes(path: Path) -> dict[str, int]:
    """Size in bytes of every file directly under `path`."""
    return {entry.name: entry.stat().st_size for entry in path.iterdir() if entry.is_file()}


def _system_busy() -> dict[str, float]:
    """Machine-wide busy and stolen CPU seconds since boot."""
    t = psutil.cpu_times()
    busy = t.user + t.nice + t.system + getattr(t, "irq", 0.0) + getattr(t, "softirq", 0.0)
    return {"machine": busy, "steal": getattr(t, "steal", 0.0)}


class CpuMeter:
    """CPU used between `start` and `stop`, in cores: by some processes, by this one
    (`loadgen`), by the whole machine, and by everything else (`other`: busy minus ours)."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._start: dict[str, float] = {}
        self._others: dict[int, tuple[str, float]] = {}
        self._t0 = 0.0

    def _sample(self) -> dict[str, float]:
        sample = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        sample["loadgen"] = time.process_time()
        sample.update(_system_busy())
        return sample

    def start(self) -> None:
        self._start = self._sample()
        self._others = _all_processes()
        self._t0 = time.perf_counter()

    def stop(self) -> dict[str, Any]:
        end = self._sample()
        wall = max(time.perf_counter() - self._t0, 1e-9)
        others = _busiest(self._others, _all_processes(), wall, self._ours())
        cores = {name: (end[name] - self._start[name]) / wall for name in end}
        ours = sum(v for k, v in cores.items() if k not in ("machine", "steal"))
        cores["other"] = max(0.0, cores["machine"] - ours)
        return {**{name: round(v, 2) for name, v in cores.items()}, "other_top": others}

    def _ours(self) -> set[int]:
        pids = {os.getpid()}
        for pid in [*self._pids.values(), os.getpid()]:
            try:
                pids.update(p.pid for p in _tree(pid))
            except psutil.NoSuchProcess:
                continue
        return pids


_OTHER_MIN_CORES = 0.05


def _all_processes() -> dict[int, tuple[str, float]]:
    """pid -> (short command line, CPU seconds) for every process."""
    found: dict[int, tuple[str, float]] = {}
    for proc in psutil.process_iter(["cmdline", "name", "cpu_times"]):
        info = proc.info
        times = info.get("cpu_times")
        if times is None:
            continue
        label = " ".join(info.get("cmdline") or [info.get("name") or "?"])[:80]
        found[proc.pid] = (label, times.user + times.system)
    return found


def _busiest(
    before: dict[int, tuple[str, float]],
    after: dict[int, tuple[str, float]],
    wall: float,
    exclude: set[int],
) -> list[tuple[str, float]]:
    """Other processes that used at least _OTHER_MIN_CORES in between, busiest first."""
    used = [
        (label, round((cpu - before.get(pid, (label, 0.0))[1]) / wall, 2))
        for pid, (label, cpu) in after.items()
        if pid not in exclude
    ]
    return sorted((u for u in used if u[1] >= _OTHER_MIN_CORES), key=lambda u: -u[1])[:3]


def background_cores(seconds: float = 2.0) -> dict[str, Any]:
    """Busy cores on the machine over `seconds` while this process sleeps."""
    meter = CpuMeter({})
    meter.start()
    time.sleep(seconds)
    return meter.stop()
