"""Identifiers and secrets: task ids, owner ids (ULID) and owner keys."""

from __future__ import annotations

import hashlib
import os
import random
import secrets
import string

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
KEY_ALPHABET = string.ascii_letters + string.digits
KEY_LENGTH = 64
# Ids need uniqueness, not secrecy (they grant nothing): a seeded generator spares a syscall.
_unique = random.Random(os.urandom(32))


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        value, digit = divmod(value, 32)
        chars.append(CROCKFORD[digit])
    return "".join(reversed(chars))


def new_task_id(now_ms: int) -> str:
    """24 characters of ``[0-9A-Z]``: 10 of time (sortable), 14 random (70 bits)."""
    return _base32(now_ms, 10) + _base32(_unique.getrandbits(70), 14)


def new_owner_id(now_ms: int) -> str:
    """A ULID: 26 characters, 10 of time and 16 random (80 bits)."""
    return _base32(now_ms, 10) + _base32(_unique.getrandbits(80), 16)


def new_key() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def hash_key(key: str) -> bytes:
    """SHA-256 suffices for a 380-bit random key; a password hash would cap the API."""
    return hashlib.sha256(key.encode()).digest()
