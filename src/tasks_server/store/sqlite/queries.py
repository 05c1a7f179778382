"""The SQLite dialect's statements, read once from ``queries.sql`` (``-- name: x`` blocks)."""

from __future__ import annotations

import re
from importlib import resources


def load(text: str) -> dict[str, str]:
    blocks = re.split(r"^-- name: (\w+)\s*$", text, flags=re.MULTILINE)
    return {name: body.strip() for name, body in zip(blocks[1::2], blocks[2::2], strict=True)}


QUERIES = load(resources.files(__package__).joinpath("queries.sql").read_text())
