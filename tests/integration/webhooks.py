"""Checking signed deliveries the way a receiver would (Standard Webhooks), written from the
convention rather than from ``tasks_server.signing``."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Iterable

OWNER_SECRET = "whsec_" + base64.b64encode(bytes(range(32))).decode()
"""The first signing secret of the ``owner`` fixture."""


def expected_signature(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    """``v1,`` + base64 of HMAC-SHA256 keyed with the secret's bytes over ``id.timestamp.body``."""
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret[len("whsec_") :])
    message = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def signed_by(
    header: Callable[[str], str | None], body: bytes, secrets: Iterable[str]
) -> list[str]:
    """Which of ``secrets`` produced one of the signatures of the ``webhook-signature`` header."""
    message_id, timestamp = header("webhook-id"), header("webhook-timestamp")
    assert message_id and timestamp, "webhook-id and webhook-timestamp are missing"
    offered = (header("webhook-signature") or "").split(" ")
    return [
        secret
        for secret in secrets
        if expected_signature(secret, message_id, timestamp, body) in offered
    ]
