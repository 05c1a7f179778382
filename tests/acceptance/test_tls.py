"""TLS: a custom CA and a client certificate against an HTTPS target that demands one."""

from __future__ import annotations

from typing import Any

from tests.support.server import ApiClient, error_paths, expect_error, now_ms, task_body
from tests.support.targets import ENCRYPTED_KEY_PASSWORD, TargetServer, TlsMaterial

LONG = {"executionDelay": 600_000}


def _assert_delivered(owner: ApiClient, tls_target: TargetServer, config: dict[str, Any]) -> None:
    task = owner.register_task(
        task_body(tls_target.url(), "POST", data={"tls": True}, config=config)
    )
    done = owner.wait_final(task["id"])
    assert (done["state"], done["statusCode"]) == ("SUCCESS", 200), (
        done,
        owner.attempts(task["id"]),
    )
    [request] = tls_target.requests_for(task["id"])
    assert request.tls
    assert request.client_cert and "client.tasks-server.test" in request.client_cert
    assert request.json() == {"tls": True}


def test_client_certificate_by_path(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    config = {
        "ca": str(tls.ca_path),
        "cert": {"value": str(tls.client_cert_path)},
        "key": str(tls.client_key_path),
    }
    _assert_delivered(owner, tls_target, config)


def test_client_certificate_by_base64_content(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    config = {"ca": tls.ca_b64, "cert": {"value": tls.client_cert_b64}, "key": tls.client_key_b64}
    _assert_delivered(owner, tls_target, config)


def test_encrypted_key_with_cert_password(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    config = {
        "ca": str(tls.ca_path),
        "cert": {"value": str(tls.client_cert_path), "password": ENCRYPTED_KEY_PASSWORD},
        "key": str(tls.extra["encrypted_key"]),
    }
    _assert_delivered(owner, tls_target, config)


def test_without_client_certificate_is_an_error(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    started = now_ms()
    task = owner.register_task(task_body(tls_target.url(), config={"ca": str(tls.ca_path)}))
    done = owner.wait_final(task["id"])
    assert done["state"] == "ERROR"
    assert done["statusCode"] == 0
    assert tls_target.hits(task["id"]) == 0
    tls_target.wait_for_tls_failure(started)
    [attempt] = owner.attempts(task["id"])
    assert attempt["statusCode"] == 0
    assert attempt["error"]


def test_untrusted_server_certificate_is_an_error(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    """Without the test CA the target's certificate is not trusted (system CAs only)."""
    config = {"cert": {"value": str(tls.client_cert_path)}, "key": str(tls.client_key_path)}
    task = owner.register_task(task_body(tls_target.url(), config=config))
    done = owner.wait_final(task["id"])
    assert (done["state"], done["statusCode"]) == ("ERROR", 0)
    assert tls_target.hits(task["id"]) == 0


def test_wrong_key_password_is_an_error(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    config = {
        "ca": str(tls.ca_path),
        "cert": {"value": str(tls.client_cert_path), "password": "not-the-password"},
        "key": str(tls.extra["encrypted_key"]),
    }
    task = owner.register_task(task_body(tls_target.url(), config=config))
    done = owner.wait_final(task["id"])
    assert (done["state"], done["statusCode"]) == ("ERROR", 0)
    assert tls_target.hits(task["id"]) == 0


def test_missing_ca_file_is_400(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    missing = str(tls.directory / "does-not-exist.pem")
    response = owner.post(
        "/v1/queues/register", json=task_body(tls_target.url(), config={"ca": missing})
    )
    data = expect_error(response, 400)
    assert ("config", "ca") in error_paths(data["message"]), data
    response = owner.post(
        "/v1/queues/register",
        json=task_body(
            tls_target.url(), config={"cert": {"value": missing}, "key": str(tls.client_key_path)}
        ),
    )
    expect_error(response, 400)
    response = owner.post(
        "/v1/queues/register",
        json=task_body(
            tls_target.url(), config={"cert": {"value": str(tls.client_cert_path)}, "key": missing}
        ),
    )
    expect_error(response, 400)
    assert owner.tasks() == []


def test_existing_files_are_accepted_at_registration(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    """The original's cases: an (empty) ca file, a cert file, a key file given as cert."""
    for config in (
        {"ca": str(tls.extra["empty"])},
        {"cert": {"value": str(tls.client_cert_path)}},
        {"cert": {"value": str(tls.client_key_path)}},
    ):
        task = owner.register_task(task_body(tls_target.url(), config={**LONG, **config}))
        owner.delete_task(task["id"])


def test_config_masks_the_certificate_password(
    owner: ApiClient, tls_target: TargetServer, tls: TlsMaterial
) -> None:
    secret = "Sup3r-Secret-Passw0rd-XYZ"
    task = owner.register_task(
        task_body(
            tls_target.url(),
            config={
                **LONG,
                "ca": str(tls.ca_path),
                "cert": {"value": str(tls.client_cert_path), "password": secret},
            },
        )
    )
    response = owner.get(f"/v1/queues/{task['id']}/config")
    assert response.status_code == 200, response.text
    assert secret not in response.text
    assert tls_target.url() in response.text
    assert secret not in owner.get(f"/v1/queues/{task['id']}").text
    assert secret not in owner.get("/v1/queues").text
