"""Signed outgoing requests, after the Standard Webhooks convention.

Each owner has one current secret (``whsec_`` + base64 of 32 random bytes) and, after a
rotation, older ones that keep signing until their overlap ends. Every attempt carries
``webhook-id`` (the task id: stable across retries), ``webhook-timestamp`` (seconds) and
``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` for each secret,
space-separated. ``Idempotency-Key`` repeats the id so targets can drop repeats.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, message_id: str, timestamp_s: int, body: bytes) -> str:
    key = base64.b64decode(secret.removeprefix(PREFIX))
    signed = f"{message_id}.{timestamp_s}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers(secrets_: Sequence[str], message_id: str, timestamp_s: int, body: bytes) -> list[str]:
    signatures = " ".join(signature(s, message_id, timestamp_s, body) for s in secrets_)
    signed = [f"webhook-signature: {signatures}"] if signatures else []
    return [
        f"webhook-id: {message_id}",
        f"webhook-timestamp: {timestamp_s}",
        *signed,
        f"Idempotency-Key: {message_id}",
    ]
