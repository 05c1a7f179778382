"""Signatures of outgoing requests (Standard Webhooks), checked against an HMAC computed here
from the convention, and against the convention's published test vector."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from tasks_server import signing

SECRET_A = "whsec_" + base64.b64encode(b"A" * 32).decode()
SECRET_B = "whsec_" + base64.b64encode(bytes(range(32))).decode()


def independent(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,`` + base64(HMAC-SHA256(key = base64decode(secret without whsec_), id.ts.body))."""
    key = base64.b64decode(secret[len("whsec_") :])
    message = b"%s.%d.%s" % (message_id.encode(), timestamp, body)
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


class TestNewSecret:
    def test_whsec_and_base64_of_32_random_bytes(self) -> None:
        secret = signing.new_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret[len("whsec_") :], validate=True)) == 32

    def test_every_secret_is_new(self) -> None:
        assert len({signing.new_secret() for _ in range(50)}) == 50


class TestSignature:
    def test_the_published_test_vector(self) -> None:
        """The example of the Standard Webhooks specification."""
        assert (
            signing.signature(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                b'{"test": 2432232314}',
            )
            == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        )

    @pytest.mark.parametrize("secret", [SECRET_A, SECRET_B, signing.new_secret()])
    @pytest.mark.parametrize(
        ("message_id", "timestamp", "body"),
        [
            ("01HZX3R4W9ABCDEFGHJKMNPQRS", 1_900_000_000, b'{"k":"v"}'),
            ("TASK", 0, b""),
            ("TASK", 1_900_000_000, "héllo ✓".encode()),
            ("TASK", 4_102_444_800, bytes(range(256))),
            ("TASK", 1, b"--tasks-0\r\nContent-Disposition: form-data\r\n\r\nx\r\n"),
        ],
    )
    def test_matches_an_independent_hmac(
        self, secret: str, message_id: str, timestamp: int, body: bytes
    ) -> None:
        assert signing.signature(secret, message_id, timestamp, body) == independent(
            secret, message_id, timestamp, body
        )

    def test_every_part_of_the_message_counts(self) -> None:
        base = signing.signature(SECRET_A, "TASK", 100, b"body")
        assert signing.signature(SECRET_B, "TASK", 100, b"body") != base
        assert signing.signature(SECRET_A, "TASK2", 100, b"body") != base
        assert signing.signature(SECRET_A, "TASK", 101, b"body") != base
        assert signing.signature(SECRET_A, "TASK", 100, b"body ") != base


class TestHeaders:
    def test_one_secret(self) -> None:
        assert signing.headers([SECRET_A], "TASKID", 1_900_000_000, b"{}") == [
            "webhook-id: TASKID",
            "webhook-timestamp: 1900000000",
            f"webhook-signature: {independent(SECRET_A, 'TASKID', 1_900_000_000, b'{}')}",
            "Idempotency-Key: TASKID",
        ]

    def test_every_secret_in_force_signs_in_the_order_given(self) -> None:
        lines = signing.headers([SECRET_B, SECRET_A], "TASKID", 7, b"payload")
        [signature_line] = [line for line in lines if line.startswith("webhook-signature:")]
        assert signature_line == "webhook-signature: " + " ".join(
            [
                independent(SECRET_B, "TASKID", 7, b"payload"),
                independent(SECRET_A, "TASKID", 7, b"payload"),
            ]
        )

    def test_without_a_secret_nothing_claims_a_signature(self) -> None:
        assert signing.headers([], "TASKID", 7, b"") == [
            "webhook-id: TASKID",
            "webhook-timestamp: 7",
            "Idempotency-Key: TASKID",
        ]
