"""Versioned schema migrations: ``migrations/NNNN_name.sql``, applied in order, once each."""

from __future__ import annotations

import sqlite3
from importlib import resources


def migrations() -> list[tuple[int, str]]:
    folder = resources.files(__package__).joinpath("migrations")
    found = [
        (int(entry.name.split("_", 1)[0]), entry.read_text())
        for entry in folder.iterdir()
        if entry.name.endswith(".sql")
    ]
    return sorted(found)


def migrate(conn: sqlite3.Connection) -> int:
    """Apply what is missing; return the schema version."""
    current: int = conn.execute("PRAGMA user_version").fetchone()[0]
    for version, script in migrations():
        if version > current:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {version};\nCOMMIT;"
            )
            current = version
    return current
