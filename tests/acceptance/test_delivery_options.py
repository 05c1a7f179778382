"""Delivery options, each proven against a real local counterpart (docs/api.md, "Delivery
options"): client certificates, HTTP/2, a forward proxy, HTTP auth, AWS SigV4, name resolution
(resolve, DNS-over-HTTPS), the PROXY protocol, cookies, redirects, TLS bounds, ``insecure``,
the refused options and transport errors.

A task is registered through the real server's API; the test asserts what the counterpart saw
and the task's final state and attempts.
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.support.counterparts import (
    DNS_A,
    ClientCert,
    DigestVerifier,
    DnsQuestion,
    ForwardProxy,
    H2Counterpart,
    HttpCounterpart,
    Pki,
    ProxyProtocolServer,
    Recorder,
    Reply,
    Seen,
    SigV4Verifier,
    b64,
    basic_handler,
    doh_handler,
    p12_bundle,
)
from tests.support.server import ApiClient, error_paths, expect_error, task_body
from tests.support.targets import TargetServer, closed_port

TLS_WORDS = ("ssl", "tls", "certificate", "handshake", "alert")


def deliver(
    owner: ApiClient, body: dict[str, Any], timeout: float = 10.0
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Register ``body``, wait for a final state; the task and its attempts."""
    task = owner.register_task(body)
    done = owner.wait_final(task["id"], timeout)
    return done, owner.attempts(task["id"])


def assert_success(done: dict[str, Any], attempts: list[dict[str, Any]], status: int = 200) -> None:
    assert (done["state"], done["statusCode"]) == ("SUCCESS", status), (done, attempts)
    assert [a["outcome"] for a in attempts] == ["SUCCESS"], attempts


def assert_readable(error: Any, words: tuple[str, ...]) -> None:
    assert isinstance(error, str) and len(error) >= 8, error
    assert any(word in error.lower() for word in words), (error, words)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
def http_counterpart() -> Iterator[HttpCounterpart]:
    with HttpCounterpart() as server:
        yield server


# -- client certificates ------------------------------------------------------------------

CLIENT_NAME = "client.tasks-options.test"


@pytest.fixture(scope="module")
def client_cert(pki: Pki) -> ClientCert:
    return pki.client_cert(CLIENT_NAME)


@pytest.fixture(scope="module")
def mtls(pki: Pki) -> Iterator[HttpCounterpart]:
    """An HTTPS counterpart that demands a client certificate issued by ``pki``'s CA."""
    with HttpCounterpart(context=pki.server_context(client_ca=pki.ca)) as server:
        yield server


def _assert_client_cert_delivered(
    owner: ApiClient, mtls: HttpCounterpart, config: dict[str, Any]
) -> None:
    done, attempts = deliver(owner, task_body(mtls.url(), "POST", data="hi", config=config))
    assert_success(done, attempts)
    [seen] = mtls.seen_by(done["id"])
    assert seen.tls_version is not None and seen.body == b"hi"
    assert seen.client_cert and CLIENT_NAME in seen.client_cert


@pytest.mark.parametrize("form", ["path", "base64"])
def test_client_certificate_pem(
    owner: ApiClient, pki: Pki, mtls: HttpCounterpart, client_cert: ClientCert, form: str
) -> None:
    if form == "path":
        cert, key = str(client_cert.cert_path), str(client_cert.key_path)
    else:
        cert, key = b64(client_cert.cert_pem), b64(client_cert.key_pem)
    config = {
        "ca": str(pki.ca_path),
        "cert": {"value": cert},
        "key": key,
        "certType": "PEM",
        "keyType": "PEM",
    }
    _assert_client_cert_delivered(owner, mtls, config)


@pytest.mark.parametrize("password", [None, "p12-Pa55word"], ids=["no-password", "password"])
@pytest.mark.parametrize("form", ["path", "base64"])
def test_client_certificate_p12(
    owner: ApiClient,
    pki: Pki,
    mtls: HttpCounterpart,
    client_cert: ClientCert,
    tmp_path: Path,
    form: str,
    password: str | None,
) -> None:
    bundle = p12_bundle(client_cert.cert_pem, client_cert.key_pem, password)
    path = tmp_path / "client.p12"
    path.write_bytes(bundle)
    cert: dict[str, Any] = {"value": str(path) if form == "path" else b64(bundle)}
    if password is not None:
        cert["password"] = password
    config = {"ca": str(pki.ca_path), "cert": cert, "certType": "P12"}
    _assert_client_cert_delivered(owner, mtls, config)


@pytest.mark.parametrize("case", ["foreign-cert", "no-cert"])
def test_wrong_or_missing_client_certificate_is_an_error(
    owner: ApiClient, pki: Pki, mtls: HttpCounterpart, tmp_path: Path, case: str
) -> None:
    config: dict[str, Any] = {"ca": str(pki.ca_path)}
    if case == "foreign-cert":
        # A certificate the counterpart does not trust: issued by another CA.
        foreign = Pki(tmp_path / "foreign", "Foreign CA").client_cert("intruder.test")
        config |= {"cert": {"value": str(foreign.cert_path)}, "key": str(foreign.key_path)}
    failures_before = len(mtls.tls_failures.items)
    done, attempts = deliver(owner, task_body(mtls.url(), config=config))
    assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
    assert mtls.seen_by(done["id"]) == []
    mtls.tls_failures.wait_for(lambda f: len(f) > failures_before, message="a refused handshake")
    [attempt] = attempts
    assert (attempt["statusCode"], attempt["outcome"]) == (0, "ERROR")
    assert_readable(attempt["error"], TLS_WORDS)


def test_p12_with_a_wrong_password_is_an_error(
    owner: ApiClient, pki: Pki, mtls: HttpCounterpart, client_cert: ClientCert
) -> None:
    bundle = p12_bundle(client_cert.cert_pem, client_cert.key_pem, "the-right-one")
    cert = {"value": b64(bundle), "password": "the-wrong-one"}
    config = {"ca": str(pki.ca_path), "cert": cert, "certType": "P12"}
    done, attempts = deliver(owner, task_body(mtls.url(), config=config))
    assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
    assert mtls.seen_by(done["id"]) == []
    assert_readable(attempts[0]["error"], ("pkcs12", "p12", "password", *TLS_WORDS))


# -- HTTP/2 -------------------------------------------------------------------------------


def test_http2_prior_knowledge_over_cleartext(owner: ApiClient) -> None:
    with H2Counterpart() as h2c:
        done, attempts = deliver(
            owner,
            task_body(
                h2c.url("/h2"), "POST", data={"v": 2}, config={"httpVersion": "2-prior-knowledge"}
            ),
        )
        assert_success(done, attempts)
        [seen] = h2c.seen_by(done["id"])
        assert seen.http_version == "2", (seen, h2c.errors.items)
        assert (seen.method, seen.path, seen.body) == ("POST", "/h2", b'{"v":2}')

        # The control: without the option the same server sees HTTP/1.1.
        done, attempts = deliver(owner, task_body(h2c.url("/h1")))
        assert_success(done, attempts)
        [seen] = h2c.seen_by(done["id"])
        assert seen.http_version == "1.1"


def test_http_version_1_0(owner: ApiClient, http_counterpart: HttpCounterpart) -> None:
    done, attempts = deliver(
        owner, task_body(http_counterpart.url(), config={"httpVersion": "1.0"})
    )
    assert_success(done, attempts)
    [seen] = http_counterpart.seen_by(done["id"])
    assert seen.http_version == "1.0"


def test_http2_negotiated_by_alpn(owner: ApiClient, pki: Pki) -> None:
    with H2Counterpart(pki.server_context()) as h2:
        config = {"httpVersion": "2", "ca": str(pki.ca_path)}
        done, attempts = deliver(owner, task_body(h2.url("/alpn"), config=config))
        assert_success(done, attempts)
        [seen] = h2.seen_by(done["id"])
        assert (seen.http_version, seen.alpn) == ("2", "h2"), (seen, h2.errors.items)
        assert seen.tls_version is not None


# -- forward proxy ------------------------------------------------------------------------


def _proxy_config(proxy: ForwardProxy, password: str) -> dict[str, Any]:
    return {
        "proxy": {"protocol": "http", "host": "127.0.0.1", "port": proxy.port},
        "proxyAuthBasic": {"username": "proxy-user", "password": password},
        "proxyHeaders": {"X-For-The-Proxy": "hello-proxy"},
    }


def test_forward_proxy_with_basic_auth(owner: ApiClient, http_counterpart: HttpCounterpart) -> None:
    url = http_counterpart.url("/via-proxy?x=1")
    with ForwardProxy("proxy-user", "proxy-Pa55") as proxy:
        body = task_body(url, config=_proxy_config(proxy, "proxy-Pa55"))
        done, attempts = deliver(owner, body)
        assert_success(done, attempts)
        [at_proxy] = proxy.seen_by(done["id"])
    # An absolute-form request, authenticated, with the proxy-only header.
    assert at_proxy.target == url
    expected = "Basic " + base64.b64encode(b"proxy-user:proxy-Pa55").decode()
    assert at_proxy.headers["Proxy-Authorization"] == expected
    assert at_proxy.headers["X-For-The-Proxy"] == "hello-proxy"
    # ... which the proxy forwarded to the target.
    [at_target] = http_counterpart.seen_by(done["id"])
    assert at_target.target == "/via-proxy?x=1"
    assert "Proxy-Authorization" not in at_target.headers


def test_wrong_proxy_credentials_fail_the_task(
    owner: ApiClient, http_counterpart: HttpCounterpart
) -> None:
    with ForwardProxy("proxy-user", "proxy-Pa55") as proxy:
        body = task_body(http_counterpart.url(), config=_proxy_config(proxy, "not-the-password"))
        done, attempts = deliver(owner, body)
        assert proxy.seen_by(done["id"]), "the request never reached the proxy"
    assert done["state"] == "ERROR", (done, attempts)
    assert http_counterpart.seen_by(done["id"]) == []
    [attempt] = attempts
    assert attempt["outcome"] == "ERROR"
    assert attempt["statusCode"] in (0, 407), attempt


# -- HTTP authentication ------------------------------------------------------------------


def test_auth_basic(owner: ApiClient) -> None:
    with HttpCounterpart(basic_handler("alice", "s3cret-Basic")) as server:
        auth = {"username": "alice", "password": "s3cret-Basic"}
        done, attempts = deliver(owner, task_body(server.url(), authBasic=auth))
        assert_success(done, attempts)
        [seen] = server.seen_by(done["id"])
        assert seen.headers["Authorization"] == "Basic " + b64(b"alice:s3cret-Basic")

        wrong = {"username": "alice", "password": "wrong"}
        done, attempts = deliver(owner, task_body(server.url(), authBasic=wrong))
        assert (done["state"], done["statusCode"]) == ("ERROR", 401), (done, attempts)


def test_auth_digest(owner: ApiClient) -> None:
    verifier = DigestVerifier("bob", "s3cret-Digest")
    with HttpCounterpart(verifier.handler) as server:
        auth = {"username": "bob", "password": "s3cret-Digest"}
        body = task_body(server.url("/digest?q=1"), "POST", data={"d": 1}, authDigest=auth)
        done, attempts = deliver(owner, body)
        assert_success(done, attempts)
        challenged, answered = server.seen_by(done["id"])
        assert "Authorization" not in challenged.headers
        assert answered.headers["Authorization"].startswith("Digest ")
        [params] = verifier.verified.items
        assert (params["username"], params["uri"], params["qop"]) == ("bob", "/digest?q=1", "auth")
        assert answered.body == b'{"d":1}'

        wrong = {"username": "bob", "password": "not-it"}
        done, attempts = deliver(owner, task_body(server.url(), authDigest=wrong))
        assert (done["state"], done["statusCode"]) == ("ERROR", 401), (done, attempts)
        assert len(verifier.verified.items) == 1


AWS = {
    "provider1": "aws",
    "provider2": "amz",
    "region": "eu-west-3",
    "service": "execute-api",
    "key": "AKIDEXAMPLETASKS",
    "secret": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
}


def test_auth_aws_sigv4(owner: ApiClient) -> None:
    verifier = SigV4Verifier(AWS["key"], AWS["secret"], AWS["region"], AWS["service"])
    with HttpCounterpart(verifier.handler) as server:
        body = task_body(
            server.url("/aws/hook"),
            "POST",
            query={"z": "1", "a": "two"},
            data={"order": 42},
            authAwsSigv4=AWS,
        )
        done, attempts = deliver(owner, body)
        assert_success(done, attempts)
        [seen] = server.seen_by(done["id"])
        assert "X-Amz-Date" in seen.headers
        assert seen.headers["Authorization"].startswith(
            f"AWS4-HMAC-SHA256 Credential={AWS['key']}/"
        )
        assert len(verifier.verified.items) == 1, verifier.rejections.items


def test_auth_aws_sigv4_wrong_secret_is_rejected(owner: ApiClient) -> None:
    verifier = SigV4Verifier(AWS["key"], AWS["secret"], AWS["region"], AWS["service"])
    with HttpCounterpart(verifier.handler) as server:
        wrong = AWS | {"secret": "not-the-secret"}
        done, attempts = deliver(owner, task_body(server.url("/aws"), authAwsSigv4=wrong))
        assert (done["state"], done["statusCode"]) == ("ERROR", 403), (done, attempts)
        [reason] = verifier.rejections.items
        assert reason.startswith("signature mismatch"), reason


# -- name resolution ----------------------------------------------------------------------


def test_resolve_points_a_made_up_name_at_loopback(owner: ApiClient, target: TargetServer) -> None:
    host = "tasks-target.test"
    config = {"resolve": [{"host": host, "port": target.port, "address": ["127.0.0.1"]}]}
    done, attempts = deliver(owner, task_body(f"http://{host}:{target.port}/cb", config=config))
    assert_success(done, attempts)
    [request] = target.requests_for(done["id"])
    assert request.headers["Host"] == f"{host}:{target.port}"


def test_doh_url_resolves_through_a_dns_over_https_stub(
    owner: ApiClient, target: TargetServer, pki: Pki
) -> None:
    host = "tasks-doh.test"
    asked: Recorder[DnsQuestion] = Recorder()
    with HttpCounterpart(doh_handler({host: "127.0.0.1"}, asked), pki.server_context()) as doh:
        config = {"dohUrl": doh.url("/dns-query"), "dohInsecure": True}
        done, attempts = deliver(owner, task_body(f"http://{host}:{target.port}/cb", config=config))
        assert_success(done, attempts)
        [request] = target.requests_for(done["id"])
        assert request.headers["Host"] == f"{host}:{target.port}"
        assert any(q.name == host and q.qtype == DNS_A for q in asked.items), asked.items
        assert all(r.path == "/dns-query" for r in doh.requests.items)


def test_doh_answer_without_the_name_fails_the_task(
    owner: ApiClient, target: TargetServer, pki: Pki
) -> None:
    asked: Recorder[DnsQuestion] = Recorder()
    with HttpCounterpart(doh_handler({}, asked), pki.server_context()) as doh:
        config = {"dohUrl": doh.url("/dns-query"), "dohInsecure": True}
        url = f"http://tasks-nowhere.test:{target.port}/cb"
        done, attempts = deliver(owner, task_body(url, config=config))
    assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
    assert any(q.name == "tasks-nowhere.test" for q in asked.items), asked.items
    assert_readable(attempts[0]["error"], ("resolve", "host"))


# -- PROXY protocol -----------------------------------------------------------------------


def test_haproxy_protocol_sends_the_proxy_line(owner: ApiClient) -> None:
    with ProxyProtocolServer() as server:
        done, attempts = deliver(
            owner, task_body(server.url("/pp"), config={"haProxyProtocol": True})
        )
        assert_success(done, attempts)
        [connection] = server.seen_by(done["id"])
    proto, family, source, destination, source_port, destination_port = connection.fields
    assert (proto, family, source, destination) == ("PROXY", "TCP4", "127.0.0.1", "127.0.0.1")
    assert int(destination_port) == server.port
    assert int(source_port) > 0
    assert connection.request is not None and connection.request.target == "/pp"


def test_haproxy_client_ip_is_the_source_address(owner: ApiClient) -> None:
    config = {"haProxyProtocol": True, "haProxyClientIp": "203.0.113.7"}
    with ProxyProtocolServer() as server:
        done, attempts = deliver(owner, task_body(server.url(), config=config))
        assert_success(done, attempts)
        [connection] = server.seen_by(done["id"])
    assert connection.fields[:3] == ["PROXY", "TCP4", "203.0.113.7"]


def test_without_haproxy_protocol_the_server_refuses(owner: ApiClient) -> None:
    with ProxyProtocolServer() as server:
        done, attempts = deliver(owner, task_body(server.url()))
        [connection] = server.seen_by(done["id"])
    assert connection.line == ""
    assert (done["state"], done["statusCode"]) == ("ERROR", 400), (done, attempts)


# -- cookies ------------------------------------------------------------------------------


def test_cookie_pairs(owner: ApiClient, target: TargetServer) -> None:
    cookies = [{"name": "session", "value": "abc123"}, {"name": "theme", "value": "dark"}]
    done, attempts = deliver(owner, task_body(target.url(), cookie=cookies))
    assert_success(done, attempts)
    [request] = target.requests_for(done["id"])
    assert request.headers.get_all("Cookie") == ["session=abc123; theme=dark"]


def test_cookie_jar_in_netscape_format(owner: ApiClient, target: TargetServer) -> None:
    jar = "\n".join(
        [
            "# Netscape HTTP Cookie File",
            "127.0.0.1\tFALSE\t/\tFALSE\t0\tjarred\tfrom-the-jar",
            "127.0.0.1\tFALSE\t/cb\tFALSE\t0\tpathed\tunder-cb",
            "127.0.0.1\tFALSE\t/elsewhere\tFALSE\t0\tnot_here\tx",
            "other.example\tFALSE\t/\tFALSE\t0\tforeign\tx",
            "127.0.0.1\tFALSE\t/\tFALSE\t1\texpired\tlong-ago",
            "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\thttponly\tyes",
            "",
        ]
    )
    done, attempts = deliver(owner, task_body(target.url(), cookie=b64(jar.encode())))
    assert_success(done, attempts)
    [request] = target.requests_for(done["id"])
    [header] = request.headers.get_all("Cookie")
    sent = dict(pair.split("=", 1) for pair in header.split("; "))
    assert sent == {"jarred": "from-the-jar", "pathed": "under-cb", "httponly": "yes"}, header


# -- redirects ----------------------------------------------------------------------------


def _hops(seen: Seen) -> Reply:
    """``/hop/N`` redirects to ``/hop/N-1``; ``/hop/0`` answers 200."""
    remaining = int(seen.path.rsplit("/", 1)[1])
    if remaining == 0:
        return Reply(200, b'{"landed":true}')
    return Reply(302, b"", [("Location", f"/hop/{remaining - 1}")])


@pytest.fixture
def hops() -> Iterator[HttpCounterpart]:
    with HttpCounterpart(_hops) as server:
        yield server


def _paths(server: HttpCounterpart, task_id: str) -> list[str]:
    return [seen.path for seen in server.seen_by(task_id)]


def test_redirects_are_followed_by_default(owner: ApiClient, hops: HttpCounterpart) -> None:
    done, attempts = deliver(owner, task_body(hops.url("/hop/2")))
    assert_success(done, attempts)
    assert base64.b64decode(done["response"]) == b'{"landed":true}'
    seen = hops.seen_by(done["id"])
    assert [r.path for r in seen] == ["/hop/2", "/hop/1", "/hop/0"]
    # refererUrl AUTO (the default): each hop names the one before it.
    assert "Referer" not in seen[0].headers
    assert [r.headers.get("Referer") for r in seen[1:]] == [hops.url("/hop/2"), hops.url("/hop/1")]


def test_referer_url(owner: ApiClient, hops: HttpCounterpart) -> None:
    config = {"refererUrl": "https://referrer.example/page?from=tasks"}
    done, attempts = deliver(owner, task_body(hops.url("/hop/0"), config=config))
    assert_success(done, attempts)
    [seen] = hops.seen_by(done["id"])
    assert seen.headers["Referer"] == "https://referrer.example/page?from=tasks"


def test_location_false_makes_the_redirect_final(owner: ApiClient, hops: HttpCounterpart) -> None:
    done, attempts = deliver(owner, task_body(hops.url("/hop/1"), config={"location": False}))
    assert_success(done, attempts, status=302)
    assert _paths(hops, done["id"]) == ["/hop/1"]


def test_redirect_attempts_bound_the_chain(owner: ApiClient, hops: HttpCounterpart) -> None:
    done, attempts = deliver(owner, task_body(hops.url("/hop/2"), config={"redirectAttempts": 1}))
    assert done["state"] == "ERROR", (done, attempts)
    assert _paths(hops, done["id"]) == ["/hop/2", "/hop/1"]
    [attempt] = attempts
    assert_readable(attempt["error"], ("redirect",))


def test_proto_https_refuses_an_http_url(owner: ApiClient, hops: HttpCounterpart) -> None:
    done, attempts = deliver(owner, task_body(hops.url("/hop/0"), config={"proto": "https"}))
    assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
    assert _paths(hops, done["id"]) == []
    [attempt] = attempts
    assert_readable(attempt["error"], ("protocol", "http"))


def test_proto_redirect_https_refuses_an_http_redirect(
    owner: ApiClient, hops: HttpCounterpart
) -> None:
    done, attempts = deliver(
        owner, task_body(hops.url("/hop/1"), config={"protoRedirect": "https"})
    )
    assert done["state"] == "ERROR", (done, attempts)
    assert _paths(hops, done["id"]) == ["/hop/1"]
    assert_readable(attempts[0]["error"], ("protocol", "http"))


def _cross_host(seen: Seen) -> Reply:
    """``/cross`` redirects to another host name (``tasks-other.test``) on the same port."""
    if seen.path == "/cross":
        port = seen.headers["Host"].rsplit(":", 1)[1]
        return Reply(302, b"", [("Location", f"http://tasks-other.test:{port}/land")])
    return Reply()


@pytest.mark.parametrize("trusted", [True, False], ids=["locationTrusted", "authBasic"])
def test_location_trusted_sends_credentials_to_the_redirected_host(
    owner: ApiClient, trusted: bool
) -> None:
    credentials = {"username": "carol", "password": "s3cret-Trusted"}
    expected = "Basic " + b64(b"carol:s3cret-Trusted")
    with HttpCounterpart(_cross_host) as server:
        config: dict[str, Any] = {
            "resolve": [{"host": "tasks-other.test", "port": server.port, "address": ["127.0.0.1"]}]
        }
        http: dict[str, Any] = {}
        if trusted:
            config["locationTrusted"] = credentials
        else:
            http["authBasic"] = credentials
        done, attempts = deliver(owner, task_body(server.url("/cross"), config=config, **http))
        assert_success(done, attempts)
        first, landed = server.seen_by(done["id"])
    assert first.headers.get("Authorization") == expected
    assert landed.headers["Host"] == f"tasks-other.test:{server.port}"
    # Without locationTrusted the credentials stay with the host they were given for.
    assert landed.headers.get("Authorization") == (expected if trusted else None)


# -- TLS bounds and insecure --------------------------------------------------------------


@pytest.fixture(scope="module")
def tls12_only(pki: Pki) -> Iterator[HttpCounterpart]:
    with HttpCounterpart(context=pki.server_context(maximum=ssl.TLSVersion.TLSv1_2)) as server:
        yield server


@pytest.fixture(scope="module")
def tls13_only(pki: Pki) -> Iterator[HttpCounterpart]:
    with HttpCounterpart(context=pki.server_context(minimum=ssl.TLSVersion.TLSv1_3)) as server:
        yield server


@pytest.mark.parametrize(
    ("which", "bounds", "negotiated"),
    [
        ("tls12_only", {"tlsVersion": "1.2", "tlsMaxVersion": "1.2"}, "TLSv1.2"),
        ("tls12_only", {"tlsMaxVersion": "1.2"}, "TLSv1.2"),
        ("tls13_only", {"tlsVersion": "1.3"}, "TLSv1.3"),
        ("tls13_only", {"tlsVersion": "1.2", "tlsMaxVersion": "1.3"}, "TLSv1.3"),
    ],
)
def test_tls_bounds_that_match_succeed(
    owner: ApiClient,
    pki: Pki,
    request: pytest.FixtureRequest,
    which: str,
    bounds: dict[str, str],
    negotiated: str,
) -> None:
    counterpart: HttpCounterpart = request.getfixturevalue(which)
    config = {"ca": str(pki.ca_path), **bounds}
    done, attempts = deliver(owner, task_body(counterpart.url(), config=config))
    assert_success(done, attempts)
    [seen] = counterpart.seen_by(done["id"])
    assert seen.tls_version == negotiated


@pytest.mark.parametrize(
    ("which", "bounds"),
    [
        ("tls12_only", {"tlsVersion": "1.3"}),
        ("tls13_only", {"tlsMaxVersion": "1.2"}),
    ],
)
def test_tls_bounds_that_exclude_the_server_fail(
    owner: ApiClient,
    pki: Pki,
    request: pytest.FixtureRequest,
    which: str,
    bounds: dict[str, str],
) -> None:
    counterpart: HttpCounterpart = request.getfixturevalue(which)
    config = {"ca": str(pki.ca_path), **bounds}
    done, attempts = deliver(owner, task_body(counterpart.url(), config=config))
    assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
    assert counterpart.seen_by(done["id"]) == []
    [attempt] = attempts
    assert_readable(attempt["error"], TLS_WORDS)


def test_cert_status_demands_an_ocsp_staple(owner: ApiClient, pki: Pki) -> None:
    with HttpCounterpart(context=pki.server_context()) as server:
        config = {"ca": str(pki.ca_path), "certStatus": True}
        done, attempts = deliver(owner, task_body(server.url(), config=config))
        assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
        assert server.seen_by(done["id"]) == []
        assert_readable(attempts[0]["error"], ("ocsp",))


def test_hsts_file_upgrades_http_to_https(owner: ApiClient, pki: Pki) -> None:
    host = "tasks-hsts.test"
    with HttpCounterpart(context=pki.server_context(hosts=(host,))) as server:
        hsts = f'{host} "20991231 00:00:00"\n'.encode()
        config = {
            "hsts": b64(hsts),
            "ca": str(pki.ca_path),
            "resolve": [{"host": host, "port": server.port, "address": ["127.0.0.1"]}],
        }
        done, attempts = deliver(owner, task_body(f"http://{host}:{server.port}/h", config=config))
        assert_success(done, attempts)
        [seen] = server.seen_by(done["id"])
    assert seen.tls_version is not None, "the http:// URL was not upgraded"


@pytest.mark.parametrize(("version", "reaches"), [(4, True), (6, False)])
def test_ip_version(
    owner: ApiClient, http_counterpart: HttpCounterpart, version: int, reaches: bool
) -> None:
    """The counterpart listens on 127.0.0.1 only: ``localhost`` over IPv6 cannot reach it."""
    url = f"http://localhost:{http_counterpart.port}/ip"
    done, attempts = deliver(owner, task_body(url, config={"ipVersion": version}))
    if reaches:
        assert_success(done, attempts)
        assert len(http_counterpart.seen_by(done["id"])) == 1
    else:
        assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
        assert_readable(attempts[0]["error"], ("connect", "resolve"))


def test_insecure_skips_certificate_checks(owner: ApiClient, tmp_path: Path) -> None:
    unknown = Pki(tmp_path / "unknown", "Unknown CA")
    with HttpCounterpart(context=unknown.server_context()) as server:
        done, attempts = deliver(owner, task_body(server.url(), config={"insecure": True}))
        assert_success(done, attempts)
        assert len(server.seen_by(done["id"])) == 1

        done, attempts = deliver(owner, task_body(server.url()))
        assert (done["state"], done["statusCode"]) == ("ERROR", 0), (done, attempts)
        assert server.seen_by(done["id"]) == []
        assert_readable(attempts[0]["error"], TLS_WORDS)


# -- refused options ----------------------------------------------------------------------

CREDENTIALS = {"username": "user", "password": "password"}
PROXY = {"protocol": "http", "host": "127.0.0.1", "port": 3128}


@pytest.mark.parametrize(
    ("section", "name", "value", "extra"),
    [
        ("httpRequest", "authNtlm", CREDENTIALS, {}),
        ("config", "proxyAuthNtlm", CREDENTIALS, {"proxy": PROXY}),
        ("config", "dnsServer", ["127.0.0.1"], {}),
    ],
)
def test_options_the_linked_libcurl_cannot_honour_are_refused(
    owner: ApiClient,
    target: TargetServer,
    section: str,
    name: str,
    value: Any,
    extra: dict[str, Any],
) -> None:
    body = task_body(target.url(), config=extra)
    body[section][name] = value
    data = expect_error(owner.post("/v1/queues/register", json=body), 400)
    assert (section, name) in error_paths(data["message"]), data
    reasons = data["message"][section][name]["_errors"]
    assert reasons and all(isinstance(r, str) and len(r) >= 8 for r in reasons), reasons


@pytest.mark.parametrize(
    ("name", "value"),
    [("credentials", "include"), ("mode", "cors"), ("referrerPolicy", "no-referrer")],
)
def test_browser_fetch_options_are_refused(
    owner: ApiClient, target: TargetServer, name: str, value: str
) -> None:
    body = task_body(target.url(), config={name: value})
    data = expect_error(owner.post("/v1/queues/register", json=body), 400)
    paths = error_paths(data["message"])
    assert any(path and path[-1] == name for path in paths), data
    assert owner.tasks() == []


# -- transport errors ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def untrusted_tls(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpCounterpart]:
    unknown = Pki(tmp_path_factory.mktemp("untrusted"), "Untrusted CA")
    with HttpCounterpart(context=unknown.server_context()) as server:
        yield server


@pytest.mark.parametrize("kind", ["refused", "dns", "tls", "timeout"])
def test_transport_errors_are_retried_failures(
    owner: ApiClient,
    target: TargetServer,
    untrusted_tls: HttpCounterpart,
    kind: str,
) -> None:
    url, words = {
        "refused": (f"http://127.0.0.1:{closed_port()}/x", ("connect", "refused")),
        "dns": ("http://no-such-host.invalid/x", ("resolve", "host")),
        "tls": (untrusted_tls.url("/x"), TLS_WORDS),
        "timeout": (target.url("/cb/slow?ms=4000"), ("timed out", "timeout")),
    }[kind]
    config = {"retry": 1, "retryInterval": 100, "timeout": 1000}
    done, attempts = deliver(owner, task_body(url, config=config))
    assert (done["state"], done["statusCode"], done["retryCount"]) == ("ERROR", 0, 1), done
    assert [a["outcome"] for a in attempts] == ["RETRY", "ERROR"], attempts
    for attempt in attempts:
        assert attempt["statusCode"] == 0
        assert_readable(attempt["error"], words)
    assert_readable(base64.b64decode(done["response"]).decode(), words)
    if kind == "timeout":
        assert target.hits(done["id"]) == 2
