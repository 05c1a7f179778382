"""A description of the machine and software a run measured."""

from __future__ import annotations

import hashlib
import os
import platform
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pycurl


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _ram_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024 / 1024, 1)
    return 0.0


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except OSError:
        return ""
    return out.stdout.strip()


def _src_digest(src: Path) -> str:
    """SHA-256 (first 12 hex) over the server's source files: which code a run measured."""
    digest = hashlib.sha256()
    for path in sorted(src.rglob("*")):
        if path.is_file() and path.suffix in (".py", ".sql"):
            digest.update(str(path.relative_to(src)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def describe(repo: Path) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "ram_gib": _ram_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "libcurl": pycurl.version,
        "sqlite": sqlite3.sqlite_version,
        "git_revision": _git(repo, "rev-parse", "--short", "HEAD") or "no commit",
        "src_uncommitted_changes": bool(_git(repo, "status", "--porcelain", "--", "src")),
        "src_digest": _src_digest(repo / "src"),
    }
