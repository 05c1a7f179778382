"""Standard Webhooks signing of every attempt, and the rotation of an owner's signing secrets
(docs/api.md, "Headers sent to the target" and "Owners").

The receiver's verification is implemented here, independently of the server: the key is the
base64-decoded secret after ``whsec_``, the signed message ``<id>.<timestamp>.<body>``, and
``webhook-signature`` a space-separated list of ``v1,<base64 HMAC-SHA256>``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pytest
from tests.support.server import (
    ApiClient,
    error_paths,
    expect_error,
    expect_json_object,
    find_values,
    now_ms,
    poll,
    task_body,
    unique_name,
)
from tests.support.targets import RecordedRequest, TargetServer

TOLERANCE_S = 300
WEEK_S = 7 * 86_400


# -- an independent receiver --------------------------------------------------------------


def sign(secret: str, message_id: str, timestamp: str, body: bytes) -> str:
    assert secret.startswith("whsec_"), secret
    key = base64.b64decode(secret[len("whsec_") :], validate=True)
    message = message_id.encode() + b"." + timestamp.encode() + b"." + body
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def sent_signatures(headers: Mapping[str, str]) -> list[str]:
    """The base64 signatures of ``webhook-signature``, each checked to be versioned ``v1``."""
    items = headers["webhook-signature"].split(" ")
    assert all(item.startswith("v1,") for item in items), items
    return [item[len("v1,") :] for item in items]


def verifying_secrets(
    secrets: Iterable[str], request: RecordedRequest, body: bytes | None = None
) -> set[str]:
    """Which of ``secrets`` produced one of the request's signatures (over ``body`` if given)."""
    headers = request.headers
    message_id, stamp = headers["webhook-id"], headers["webhook-timestamp"]
    signed = request.body if body is None else body
    sent = sent_signatures(headers)
    return {
        secret
        for secret in secrets
        if any(hmac.compare_digest(sign(secret, message_id, stamp, signed), s) for s in sent)
    }


def assert_fresh_timestamp(request: RecordedRequest) -> None:
    stamp = request.headers["webhook-timestamp"]
    assert stamp.isdigit(), stamp
    assert abs(int(stamp) - request.at_ms / 1000) <= 5, (stamp, request.at_ms)
    assert abs(int(stamp) - time.time()) <= TOLERANCE_S


# -- owners with their signing secret ------------------------------------------------------


def register(api: ApiClient) -> tuple[ApiClient, str]:
    """A fresh owner as an authenticated client, and the signing secret its registration gave."""
    name = unique_name("sig")
    response = api.http.post("/v1/owners/register", json={"name": name})
    assert response.status_code == 201, response.text
    data = expect_json_object(response)
    secret = data["signingSecret"]
    assert isinstance(secret, str) and secret.startswith("whsec_"), data
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) >= 24
    client = ApiClient(api.base_url, owner_id=data["id"], key=data["key"], name=name)
    return client, secret


Signer = tuple[ApiClient, str]


@pytest.fixture
def signer(api: ApiClient) -> Iterator[Signer]:
    client, secret = register(api)
    try:
        yield client, secret
    finally:
        client.close()


def listed(owner: ApiClient) -> list[dict[str, Any]]:
    response = owner.get(f"/v1/owners/{owner.name}/signing-secrets")
    assert response.status_code == 200, response.text
    data = response.json()
    assert isinstance(data, list), data
    return data


def rotate(owner: ApiClient, overlap_s: int | None) -> str:
    """Rotate; returns the new current secret (the first one listed afterwards)."""
    body = {} if overlap_s is None else {"overlapSeconds": overlap_s}
    response = owner.post(f"/v1/owners/{owner.name}/signing-secrets/rotate", json=body)
    assert response.status_code == 201, response.text
    current = listed(owner)[0]
    assert current["expiresAt"] is None, current
    assert current["secret"] in find_values(response.json(), "secret"), response.text
    return str(current["secret"])


def deliver_one(owner: ApiClient, target: TargetServer, body: dict[str, Any]) -> RecordedRequest:
    task = owner.register_task(body)
    done = owner.wait_final(task["id"])
    assert done["state"] == "SUCCESS", (done, owner.attempts(task["id"]))
    [request] = target.requests_for(task["id"])
    return request


# -- signatures ---------------------------------------------------------------------------

BODIES: dict[str, tuple[str, Any, str]] = {
    "text": ("POST", "plain text, signed as sent: é ✓", "text/plain"),
    "json": (
        "PUT",
        {"order": 7, "price": 9.5, "nested": {"ok": True, "none": None}},
        "application/json",
    ),
    "form": (
        "POST",
        [{"name": "field", "value": "one"}, {"name": "other", "value": "two & three"}],
        "multipart/form-data",
    ),
}


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_every_body_kind_is_signed(signer: Signer, target: TargetServer, kind: str) -> None:
    owner, secret = signer
    method, data, content_type = BODIES[kind]
    request = deliver_one(owner, target, task_body(target.url(), method, data=data))
    assert request.headers["Content-Type"].startswith(content_type)
    assert request.body, "the body is what is signed: it must not be empty here"
    task_id = request.queue_id
    assert request.headers["webhook-id"] == task_id
    assert request.headers["Idempotency-Key"] == task_id
    assert_fresh_timestamp(request)
    assert len(sent_signatures(request.headers)) == 1
    assert verifying_secrets([secret], request) == {secret}
    # The verifier is not a rubber stamp: another body, or another secret, does not verify.
    assert verifying_secrets([secret], request, body=request.body + b" ") == set()
    other = "whsec_" + base64.b64encode(b"\x01" * 32).decode()
    assert verifying_secrets([other], request) == set()


def test_a_request_without_body_is_signed_over_the_empty_body(
    signer: Signer, target: TargetServer
) -> None:
    owner, secret = signer
    request = deliver_one(owner, target, task_body(target.url(), "GET", query={"a": "1"}))
    assert request.body == b""
    assert verifying_secrets([secret], request) == {secret}


def test_retries_keep_the_webhook_id_and_are_signed_again(
    signer: Signer, target: TargetServer
) -> None:
    owner, secret = signer
    url = target.script(unique_name("sig-retry"), [500, 200])
    body = task_body(url, "POST", data={"n": 1}, config={"retry": 2, "retryInterval": 100})
    task = owner.register_task(body)
    done = owner.wait_final(task["id"])
    assert (done["state"], done["retryCount"]) == ("SUCCESS", 1), done
    first, retry = target.requests_for(task["id"])
    assert retry.headers["X-Tasks-Retry-Count"] == "1"
    for request in (first, retry):
        assert request.headers["webhook-id"] == task["id"]
        assert request.headers["Idempotency-Key"] == task["id"]
        assert_fresh_timestamp(request)
        assert verifying_secrets([secret], request) == {secret}
    assert int(retry.headers["webhook-timestamp"]) >= int(first.headers["webhook-timestamp"])


def test_an_edited_body_is_signed_as_edited(signer: Signer, target: TargetServer) -> None:
    owner, secret = signer
    body = task_body(target.url(), "POST", data="before", config={"executionDelay": 600_000})
    task = owner.register_task(body)
    response = owner.edit(task["id"], {"httpRequest": {"data": {"edited": True}}})
    assert response.status_code == 200, response.text
    owner.execute(task["id"])
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"
    [request] = target.requests_for(task["id"])
    assert request.body == b'{"edited":true}'
    assert verifying_secrets([secret], request) == {secret}


def test_a_retry_is_signed_with_the_secrets_of_its_own_time(
    signer: Signer, target: TargetServer
) -> None:
    """Rotating between two attempts: the retry carries the new secret's signature only."""
    owner, old = signer
    url = target.script(unique_name("sig-rot"), [500, 200])
    body = task_body(url, "POST", data="again", config={"retry": 1, "retryInterval": 600_000})
    task = owner.register_task(body)
    target.wait_for_hits(task["id"], 1)
    poll(
        lambda: owner.attempts(task["id"]),
        lambda attempts: len(attempts) == 1,
        timeout=5,
        message="the first attempt recorded",
    )
    new = rotate(owner, 0)
    owner.execute(task["id"])
    assert owner.wait_final(task["id"])["state"] == "SUCCESS"
    first, retry = target.requests_for(task["id"])
    assert verifying_secrets([old, new], first) == {old}
    assert verifying_secrets([old, new], retry) == {new}
    assert retry.headers["webhook-id"] == first.headers["webhook-id"] == task["id"]


# -- the secrets and their rotation -------------------------------------------------------


def test_signing_secrets_list_the_current_secret(signer: Signer) -> None:
    owner, secret = signer
    [current] = listed(owner)
    assert current["secret"] == secret
    assert current["expiresAt"] is None
    assert isinstance(current["createdAt"], int)
    assert abs(current["createdAt"] - now_ms()) < 60_000


def test_rotation_signs_with_both_secrets_during_the_overlap(
    signer: Signer, target: TargetServer
) -> None:
    owner, old = signer
    rotated_at = now_ms()
    new = rotate(owner, 600)
    assert new != old and new.startswith("whsec_")

    current, previous = listed(owner)
    assert (current["secret"], previous["secret"]) == (new, old)
    assert abs(previous["expiresAt"] - (rotated_at + 600_000)) < 10_000, previous

    request = deliver_one(owner, target, task_body(target.url(), "POST", data={"r": 1}))
    assert len(sent_signatures(request.headers)) == 2
    assert verifying_secrets([old, new], request) == {old, new}


def test_rotation_without_overlap_signs_with_the_new_secret_only(
    signer: Signer, target: TargetServer
) -> None:
    owner, old = signer
    new = rotate(owner, 0)
    assert [entry["secret"] for entry in listed(owner)] == [new]

    request = deliver_one(owner, target, task_body(target.url(), "POST", data="after"))
    assert len(sent_signatures(request.headers)) == 1
    assert verifying_secrets([old, new], request) == {new}


def test_the_old_secret_stops_signing_when_the_overlap_ends(
    signer: Signer, target: TargetServer
) -> None:
    owner, old = signer
    new = rotate(owner, 1)
    during = deliver_one(owner, target, task_body(target.url(), "POST", data="during"))
    if during.at_ms < listed_expiry(owner, old):
        assert verifying_secrets([old, new], during) == {old, new}
    poll(
        lambda: [entry["secret"] for entry in listed(owner)],
        lambda secrets: secrets == [new],
        timeout=5,
        message="the old secret expired from the list",
    )
    after = deliver_one(owner, target, task_body(target.url(), "POST", data="after"))
    assert len(sent_signatures(after.headers)) == 1
    assert verifying_secrets([old, new], after) == {new}


def listed_expiry(owner: ApiClient, secret: str) -> int:
    """When ``secret`` stops signing (ms), or 0 when it is no longer listed."""
    for entry in listed(owner):
        if entry["secret"] == secret:
            return int(entry["expiresAt"])
    return 0


def test_successive_rotations_keep_every_secret_of_the_overlap(
    signer: Signer, target: TargetServer
) -> None:
    owner, first = signer
    second = rotate(owner, WEEK_S)
    third = rotate(owner, None)  # the default overlap: one day
    assert [entry["secret"] for entry in listed(owner)] == [third, second, first]

    request = deliver_one(owner, target, task_body(target.url(), "POST", data="three"))
    assert len(sent_signatures(request.headers)) == 3
    assert verifying_secrets([first, second, third], request) == {first, second, third}


def test_a_rotation_without_overlap_ends_every_older_secret(
    signer: Signer, target: TargetServer
) -> None:
    owner, first = signer
    second = rotate(owner, WEEK_S)
    third = rotate(owner, 0)
    assert [entry["secret"] for entry in listed(owner)] == [third]
    request = deliver_one(owner, target, task_body(target.url(), "POST", data="only"))
    assert verifying_secrets([first, second, third], request) == {third}
    assert len(sent_signatures(request.headers)) == 1


@pytest.mark.parametrize("overlap", [-1, 2_592_001, "60", 1.5])
def test_rotation_rejects_a_bad_overlap(signer: Signer, overlap: Any) -> None:
    owner, secret = signer
    response = owner.post(
        f"/v1/owners/{owner.name}/signing-secrets/rotate", json={"overlapSeconds": overlap}
    )
    data = expect_error(response, 400)
    assert ("overlapSeconds",) in error_paths(data["message"]), data
    assert [entry["secret"] for entry in listed(owner)] == [secret]


def test_signing_secrets_are_the_callers_only(signer: Signer, api: ApiClient) -> None:
    owner, _ = signer
    other, _ = register(api)
    try:
        expect_error(owner.get(f"/v1/owners/{other.name}/signing-secrets"), 404)
        expect_error(owner.post(f"/v1/owners/{other.name}/signing-secrets/rotate", json={}), 404)
    finally:
        other.close()
