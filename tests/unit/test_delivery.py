"""A spec compiled into the request the dispatcher sends, and its stored form.

The stored form is all a restarted server has: whatever it loses, the next delivery loses.
"""

from __future__ import annotations

import base64
import re
from dataclasses import fields
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import orjson
import pytest

from tasks_server.delivery import Delivery, compile_delivery, dump_delivery, load_delivery
from tasks_server.dispatch.transport.base import (
    DEFAULT_OPTIONS,
    Auth,
    Material,
    Options,
    Proxy,
    Request,
    Tls,
)
from tasks_server.retry import RetryPolicy
from tasks_server.spec import DEFAULT_USER_AGENT, TaskSpec

NOW = 1_900_000_000_000
URL = "http://target.example/hook"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n"


def compiled(
    request: dict[str, Any] | None = None, config: dict[str, Any] | None = None
) -> Delivery:
    body: dict[str, Any] = {"httpRequest": {"url": URL, "method": "POST", **(request or {})}}
    if config is not None:
        body["config"] = config
    spec = TaskSpec.model_validate_json(orjson.dumps(body), context={"now_ms": NOW, "future": True})
    return compile_delivery(spec)


def round_trip(delivery: Delivery) -> Delivery:
    return load_delivery(dump_delivery(delivery).decode())


def form_fields(content_type_header: str, body: bytes) -> list[tuple[str, str]]:
    """The (name, value) pairs of a ``multipart/form-data`` body, read by the email parser.

    Asserts the body is well formed: the boundary of the header, one part per field, each a
    form-data part with a name and no filename, and nothing after the closing delimiter.
    """
    name, _, value = content_type_header.partition(": ")
    assert name == "Content-Type"
    match = re.fullmatch(r"multipart/form-data; boundary=(tasks-[0-9a-f]+)", value)
    assert match is not None, value
    boundary = match.group(1)
    assert body.startswith(f"--{boundary}\r\n".encode())
    assert body.endswith(f"\r\n--{boundary}--\r\n".encode())
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {value}\r\n\r\n".encode() + body
    )
    assert message.is_multipart()
    assert not message.defects
    pairs = []
    for part in message.iter_parts():
        assert part.get_content_disposition() == "form-data"
        assert part.get_filename() is None
        raw = part.get_payload(decode=True)
        assert isinstance(raw, bytes)
        pairs.append((part.get_param("name", header="content-disposition"), raw.decode()))
    return pairs


class TestRequest:
    def test_a_minimal_post(self) -> None:
        delivery = compiled()
        request = delivery.request
        assert (request.url, request.method) == (URL, "POST")
        assert request.headers == ()
        assert request.body is None
        assert request.options is DEFAULT_OPTIONS
        assert request.user_agent == DEFAULT_USER_AGENT
        assert request.timeout_ms == 30_000
        assert request.tls is None
        assert request.keep_body is True
        assert delivery.retry == RetryPolicy(limit=0, interval_ms=1)
        assert delivery.timeout_at_ms is None

    def test_query_is_appended_to_the_url_encoded(self) -> None:
        query = {"q": "a b&c", "lang": "é", "list[]": "1"}
        assert compiled({"query": query}).request.url == (
            URL + "?q=a+b%26c&lang=%C3%A9&list%5B%5D=1"
        )

    def test_query_extends_a_url_that_has_one(self) -> None:
        request = compiled({"url": URL + "?fixed=1", "query": {"more": "2"}}).request
        assert request.url == URL + "?fixed=1&more=2"

    def test_headers_are_sent_as_given_without_the_user_agent(self) -> None:
        headers = {"X-Custom": "1", "Authorization": "Bearer t", "User-Agent": "ignored"}
        assert compiled({"headers": headers}).request.headers == (
            "X-Custom: 1",
            "Authorization: Bearer t",
        )

    def test_json_data_is_sent_as_json(self) -> None:
        data = {"k": "v", "n": {"deep": 1.5}, "ok": True, "none": None}
        request = compiled({"data": data}).request
        assert request.body is not None
        assert orjson.loads(request.body) == data
        assert request.headers == ("Content-Type: application/json",)

    def test_string_data_is_sent_as_utf8_text(self) -> None:
        request = compiled({"data": "héllo"}).request
        assert request.body == "héllo".encode()
        assert request.headers == ("Content-Type: text/plain; charset=utf-8",)

    def test_a_content_type_given_by_the_user_wins(self) -> None:
        request = compiled({"data": "<a/>", "headers": {"content-type": "application/xml"}}).request
        assert request.headers == ("content-type: application/xml",)
        assert request.body == b"<a/>"

    def test_pairs_are_sent_as_a_form(self) -> None:
        pairs = [("a", "1"), ("a", "2"), ("b", "x")]
        data = [{"name": name, "value": value} for name, value in pairs]
        request = compiled({"data": data}).request
        [content_type] = request.headers
        assert request.body is not None
        assert form_fields(content_type, request.body) == pairs

    @pytest.mark.parametrize("method", ["GET", "DELETE"])
    @pytest.mark.parametrize("data", ["text", {"k": "v"}, [{"name": "a", "value": "b"}]])
    def test_get_and_delete_drop_data(self, method: str, data: Any) -> None:
        request = compiled({"method": method, "data": data}).request
        assert (request.body, request.headers) == (None, ())

    @pytest.mark.parametrize("method", ["PUT", "PATCH"])
    def test_put_and_patch_keep_data(self, method: str) -> None:
        assert compiled({"method": method, "data": "x"}).request.body == b"x"

    def test_config_reaches_the_request(self) -> None:
        request = compiled(
            config={"userAgent": "Agent/2.0 (test)", "timeout": 4_500, "traceResponseData": False}
        ).request
        assert request.user_agent == "Agent/2.0 (test)"
        assert request.timeout_ms == 4_500
        assert request.keep_body is False


class TestTls:
    def test_paths_stay_paths(self, tmp_path: Path) -> None:
        ca, key = tmp_path / "ca.pem", tmp_path / "key.pem"
        ca.write_bytes(PEM)
        key.write_bytes(KEY)
        tls = compiled(
            config={"ca": str(ca), "cert": {"value": str(ca)}, "key": str(key)}
        ).request.tls
        assert tls == Tls(
            ca=Material(path=str(ca)), cert=Material(path=str(ca)), key=Material(path=str(key))
        )

    def test_base64_becomes_the_content(self) -> None:
        config = {
            "ca": base64.b64encode(PEM).decode(),
            "cert": {"value": base64.b64encode(PEM).decode(), "password": "s3cret"},
            "key": base64.b64encode(KEY).decode(),
        }
        tls = compiled(config=config).request.tls
        assert tls == Tls(
            ca=Material(blob=PEM),
            cert=Material(blob=PEM),
            cert_password="s3cret",
            key=Material(blob=KEY),
        )

    def test_a_ca_alone(self) -> None:
        tls = compiled(config={"ca": base64.b64encode(PEM).decode()}).request.tls
        assert tls == Tls(ca=Material(blob=PEM))


class TestRetryPolicy:
    def test_from_the_config(self) -> None:
        delivery = compiled(
            config={
                "retry": 4,
                "retryInterval": 1_500,
                "retryExponential": True,
                "ignoreStatusCode": [404, 410],
            }
        )
        assert delivery.retry == RetryPolicy(
            limit=4, interval_ms=1_500, linear=True, ignore_status_codes=frozenset({404, 410})
        )

    def test_retry_at_means_exactly_one_retry_then(self) -> None:
        delivery = compiled(config={"retry": 9, "retryAt": NOW + 60_000, "ignoreStatusCode": [418]})
        assert delivery.retry.limit == 1
        assert delivery.retry.at_ms == NOW + 60_000
        assert delivery.retry.ignore_status_codes == frozenset({418})


class TestTimeout:
    def test_timeout_at_is_the_deadline_of_the_first_attempt_only(self) -> None:
        delivery = compiled(config={"timeout": 5_000, "timeoutAt": NOW + 120_000})
        assert delivery.timeout_at_ms == NOW + 120_000
        assert delivery.timeout_ms(NOW + 20_000, first_attempt=True) == 100_000
        assert delivery.timeout_ms(NOW + 20_000, first_attempt=False) == 5_000

    def test_a_passed_deadline_still_leaves_a_millisecond(self) -> None:
        delivery = compiled(config={"timeoutAt": NOW + 120_000})
        assert delivery.timeout_ms(NOW + 500_000, first_attempt=True) == 1

    def test_without_timeout_at_every_attempt_has_the_timeout(self) -> None:
        delivery = compiled(config={"timeout": 5_000})
        assert delivery.timeout_ms(NOW, first_attempt=True) == 5_000


class TestStoredForm:
    """``load_delivery(dump_delivery(d)) == d`` for every field, as after a restart."""

    @pytest.mark.parametrize(
        ("request_fields", "config"),
        [
            ({}, None),
            (
                {
                    "method": "put",
                    "url": URL + "?a=1",
                    "query": {"q": "x y", "z": "é"},
                    "headers": {"X-A": "1", "Content-Type": "application/vnd.x+json"},
                    "data": {"k": "v", "nested": {"n": 1, "f": 0.25, "b": False, "z": None}},
                },
                {
                    "userAgent": "Custom-Agent/9.9",
                    "timeout": 7_000,
                    "timeoutAt": NOW + 300_000,
                    "traceResponseData": False,
                    "retry": 3,
                    "retryInterval": 250,
                    "retryExponential": True,
                    "ignoreStatusCode": [599, 400, 404],
                },
            ),
            ({"data": "plain text ✓"}, {"retryAt": NOW + 90_000}),
            ({"data": [{"name": "f", "value": "1"}, {"name": "g", "value": "ü"}]}, None),
            (
                {},
                {
                    "cert": {"value": base64.b64encode(PEM).decode()},
                    "key": base64.b64encode(KEY).decode(),
                },
            ),
            (
                {"method": "PATCH", "data": {"a": "b"}},
                {
                    "ca": base64.b64encode(PEM).decode(),
                    "cert": {"value": base64.b64encode(PEM).decode(), "password": "pw"},
                    "key": base64.b64encode(KEY).decode(),
                },
            ),
        ],
    )
    def test_round_trip_is_exact(
        self, request_fields: dict[str, Any], config: dict[str, Any] | None
    ) -> None:
        delivery = compiled(request_fields, config)
        assert round_trip(delivery) == delivery

    def test_round_trip_with_file_paths(self, tmp_path: Path) -> None:
        ca = tmp_path / "ca.pem"
        ca.write_bytes(PEM)
        delivery = compiled(config={"ca": str(ca), "cert": {"value": str(ca)}, "key": str(ca)})
        assert round_trip(delivery) == delivery

    def test_every_field_differs_from_its_default_and_survives(self) -> None:
        """One delivery with no field at its default: a field the stored form dropped would
        come back as the default and fail the comparison."""
        delivery = compiled(
            {
                "method": "PATCH",
                "query": {"q": "1"},
                "headers": {"X-A": "1"},
                "data": {"location": {"lat": "1.5"}},
                "authDigest": {"username": "u", "password": "p"},
            },
            {
                "location": False,
                "userAgent": "Not-The-Default/1",
                "timeout": 1_234_000,
                "timeoutAt": NOW + 400_000,
                "traceResponseData": False,
                "retry": 2,
                "retryInterval": 77,
                "retryExponential": True,
                "ignoreStatusCode": [404],
                "ca": base64.b64encode(PEM).decode(),
                "cert": {"value": base64.b64encode(PEM).decode(), "password": "pw"},
                "key": base64.b64encode(KEY).decode(),
            },
        )
        bare = Request(url=delivery.request.url, method=delivery.request.method)
        at_default = [
            field.name
            for field in fields(Request)
            if getattr(delivery.request, field.name) == getattr(bare, field.name)
        ]
        assert at_default == ["url", "method"]
        loaded = round_trip(delivery)
        for name in ("request", "retry", "timeout_at_ms"):
            assert getattr(loaded, name) == getattr(delivery, name), name
        for field in fields(delivery.request):
            assert getattr(loaded.request, field.name) == getattr(delivery.request, field.name)
        assert loaded.request.user_agent == "Not-The-Default/1"
        assert loaded.request.body is not None
        assert orjson.loads(loaded.request.body) == {"location": {"lat": "1.5"}}
        assert loaded.request.keep_body is False
        assert loaded.request.options == Options(
            auth=Auth("digest", "u", "p"), follow_redirects=False
        )
        assert loaded.retry.at_ms is None

    def test_the_stored_form_is_json_text(self) -> None:
        stored = dump_delivery(compiled({"data": "x"}))
        assert isinstance(orjson.loads(stored), dict)
        assert load_delivery(stored) == load_delivery(stored.decode())


CREDENTIALS = {"username": "user", "password": "pass"}
AWS = {
    "provider1": "aws",
    "provider2": "amz",
    "region": "eu-west-1",
    "service": "s3",
    "key": "AKIDEXAMPLE",
    "secret": "wJalrXUtnFEMI",
}
JAR_TEXT = (
    "# Netscape HTTP Cookie File\n"
    "# a comment\n"
    "\n"
    "#HttpOnly_.example.com\tTRUE\t/\tTRUE\t0\tsid\tabc\n"
    "example.com\tFALSE\t/\tFALSE\t0\tlang\ten\n"
)
HSTS_TEXT = b'.example.com "20300101 00:00:00"\n'
EVERY_REQUEST_OPTION = {"cookie": base64.b64encode(JAR_TEXT.encode()).decode(), "authAwsSigv4": AWS}
EVERY_CONFIG_OPTION: dict[str, Any] = {
    "httpVersion": "2",
    "ipVersion": 6,
    "refererUrl": "https://ref.example/page",
    "keepAliveDuration": 0,
    "hsts": base64.b64encode(HSTS_TEXT).decode(),
    "sessionId": False,
    "insecure": True,
    "location": False,
    "redirectAttempts": 3,
    "proto": "https",
    "protoRedirect": "HTTPS",
    "dnsServer": ["1.1.1.1", "2606:4700:4700::1111"],
    "resolve": [
        {"host": "api.example", "port": 443, "address": ["127.0.0.1", "0:0::1"]},
        {"host": "*", "port": 80, "address": ["10.0.0.1"]},
    ],
    "dohUrl": "https://doh.example/dns-query",
    "dohInsecure": True,
    "tlsVersion": "1.2",
    "tlsMaxVersion": "1.3",
    "proxy": {"protocol": "HTTPS", "host": "proxy.example", "port": 8443},
    "proxyHeaders": {"X-Proxy-Token": "t", "X-Other": "2"},
    "proxyInsecure": True,
    "proxyHttpVersion": "1.0",
    "proxyAuthDigest": {"username": "pu", "password": "pp"},
    "haProxyClientIp": "192.0.2.7",
    "haProxyProtocol": True,
    "certType": "der",
    "keyType": "pem",
    "certStatus": True,
}
EVERY_OPTION = Options(
    auth=Auth("aws-sigv4", "AKIDEXAMPLE", "wJalrXUtnFEMI", aws_sigv4="aws:amz:eu-west-1:s3"),
    cookie_jar=(
        "#HttpOnly_.example.com\tTRUE\t/\tTRUE\t0\tsid\tabc",
        "example.com\tFALSE\t/\tFALSE\t0\tlang\ten",
    ),
    http_version="2",
    ip_version=6,
    referer="https://ref.example/page",
    auto_referer=False,
    keepalive_s=0,
    hsts=HSTS_TEXT,
    session_id_cache=False,
    insecure=True,
    follow_redirects=False,
    max_redirects=3,
    protocols=("https",),
    redirect_protocols=("https",),
    dns_servers=("1.1.1.1", "2606:4700:4700::1111"),
    resolve=("api.example:443:127.0.0.1,[::1]", "*:80:10.0.0.1"),
    doh_url="https://doh.example/dns-query",
    doh_insecure=True,
    tls_min="1.2",
    tls_max="1.3",
    proxy=Proxy(
        url="https://proxy.example:8443",
        http10=True,
        headers=("X-Proxy-Token: t", "X-Other: 2"),
        insecure=True,
        auth=Auth("digest", "pu", "pp"),
    ),
    haproxy_protocol=True,
    haproxy_client_ip="192.0.2.7",
    cert_type="DER",
    key_type="PEM",
    cert_status=True,
)


def options_of(request: dict[str, Any] | None = None, **config: Any) -> Options:
    return compiled(request, config).request.options


class TestOptions:
    """Each delivery option of the spec, compiled into the transport's ``Options``."""

    def test_no_option_is_the_shared_default(self) -> None:
        assert options_of() is DEFAULT_OPTIONS

    @pytest.mark.parametrize(
        "config",
        [
            {"httpVersion": "1.1"},
            {"refererUrl": "AUTO"},
            {"keepAliveDuration": 30},
            {"sessionId": True, "insecure": False, "location": True},
            {"redirectAttempts": 8, "proxyHttpVersion": "1.1"},
            {"hsts": None, "dohInsecure": False, "haProxyProtocol": False, "certStatus": False},
        ],
    )
    def test_options_given_at_their_defaults_are_the_shared_default(
        self, config: dict[str, Any]
    ) -> None:
        assert options_of(**config) is DEFAULT_OPTIONS

    @pytest.mark.parametrize(
        ("request_fields", "expected"),
        [
            (
                {"cookie": [{"name": "sid", "value": "abc"}, {"name": "lang", "value": "en"}]},
                Options(cookies="sid=abc; lang=en"),
            ),
            (
                {"cookie": base64.b64encode(JAR_TEXT.encode()).decode()},
                Options(
                    cookie_jar=(
                        "#HttpOnly_.example.com\tTRUE\t/\tTRUE\t0\tsid\tabc",
                        "example.com\tFALSE\t/\tFALSE\t0\tlang\ten",
                    )
                ),
            ),
            ({"authBasic": CREDENTIALS}, Options(auth=Auth("basic", "user", "pass"))),
            ({"authDigest": CREDENTIALS}, Options(auth=Auth("digest", "user", "pass"))),
            ({"authNtlm": CREDENTIALS}, Options(auth=Auth("ntlm", "user", "pass"))),
            (
                {"authAwsSigv4": AWS},
                Options(
                    auth=Auth(
                        "aws-sigv4",
                        "AKIDEXAMPLE",
                        "wJalrXUtnFEMI",
                        aws_sigv4="aws:amz:eu-west-1:s3",
                    )
                ),
            ),
        ],
    )
    def test_request_options(self, request_fields: dict[str, Any], expected: Options) -> None:
        assert options_of(request_fields) == expected

    @pytest.mark.parametrize(
        ("config", "expected"),
        [
            ({"httpVersion": "0.9"}, Options(http_version="0.9")),
            ({"httpVersion": "3"}, Options(http_version="3")),
            ({"ipVersion": 4}, Options(ip_version=4)),
            (
                {"refererUrl": "http://ref.example/"},
                Options(referer="http://ref.example/", auto_referer=False),
            ),
            ({"keepAliveDuration": 0}, Options(keepalive_s=0)),
            ({"keepAliveDuration": 600}, Options(keepalive_s=600)),
            ({"hsts": True}, Options(hsts=True)),
            ({"hsts": False}, Options(hsts=False)),
            ({"hsts": base64.b64encode(HSTS_TEXT).decode()}, Options(hsts=HSTS_TEXT)),
            ({"sessionId": False}, Options(session_id_cache=False)),
            ({"insecure": True}, Options(insecure=True)),
            ({"location": False}, Options(follow_redirects=False)),
            ({"redirectAttempts": 0}, Options(max_redirects=0)),
            (
                {"locationTrusted": CREDENTIALS},
                Options(trusted_redirect_auth=Auth("basic", "user", "pass")),
            ),
            ({"proto": "HTTPS"}, Options(protocols=("https",))),
            ({"protoRedirect": "http"}, Options(redirect_protocols=("http",))),
            ({"dnsServer": ["9.9.9.9"]}, Options(dns_servers=("9.9.9.9",))),
            (
                {"resolve": [{"host": "api.example", "port": 8080, "address": ["127.0.0.1"]}]},
                Options(resolve=("api.example:8080:127.0.0.1",)),
            ),
            (
                {
                    "resolve": [
                        {"host": "v6.example", "port": 443, "address": ["::1", "2001:DB8::5"]}
                    ]
                },
                Options(resolve=("v6.example:443:[::1],[2001:db8::5]",)),
            ),
            (
                {
                    "resolve": [
                        {"host": "a.example", "port": 80, "address": ["192.0.2.1", "::1"]},
                        {"host": "*", "port": 443, "address": ["192.0.2.2"]},
                    ]
                },
                Options(resolve=("a.example:80:192.0.2.1,[::1]", "*:443:192.0.2.2")),
            ),
            ({"dohUrl": "https://doh.example/q"}, Options(doh_url="https://doh.example/q")),
            (
                {"dohUrl": "https://doh.example/q", "dohInsecure": True},
                Options(doh_url="https://doh.example/q", doh_insecure=True),
            ),
            ({"tlsVersion": "1.1"}, Options(tls_min="1.1")),
            ({"tlsMaxVersion": "1.2"}, Options(tls_max="1.2")),
            (
                {"proxy": {"protocol": "http", "host": "p.example"}},
                Options(proxy=Proxy("http://p.example")),
            ),
            (
                {"proxy": {"protocol": "HTTP", "host": "10.1.2.3", "port": 3128}},
                Options(proxy=Proxy("http://10.1.2.3:3128")),
            ),
            (
                {
                    "proxy": {"protocol": "http", "host": "p.example", "port": 8080},
                    "proxyHeaders": {"X-A": "1"},
                    "proxyInsecure": True,
                    "proxyHttpVersion": "1.0",
                    "proxyAuthBasic": CREDENTIALS,
                },
                Options(
                    proxy=Proxy(
                        "http://p.example:8080",
                        http10=True,
                        headers=("X-A: 1",),
                        insecure=True,
                        auth=Auth("basic", "user", "pass"),
                    )
                ),
            ),
            (
                {"proxy": {"protocol": "http", "host": "p.example"}, "proxyAuthNtlm": CREDENTIALS},
                Options(proxy=Proxy("http://p.example", auth=Auth("ntlm", "user", "pass"))),
            ),
            ({"haProxyProtocol": True}, Options(haproxy_protocol=True)),
            ({"haProxyClientIp": "2001:DB8::7"}, Options(haproxy_client_ip="2001:db8::7")),
            ({"certType": "p12", "keyType": "der"}, Options(cert_type="P12", key_type="DER")),
            ({"certStatus": True}, Options(cert_status=True)),
        ],
    )
    def test_config_options(self, config: dict[str, Any], expected: Options) -> None:
        assert options_of(**config) == expected

    def test_every_option_at_once(self) -> None:
        assert options_of(EVERY_REQUEST_OPTION, **EVERY_CONFIG_OPTION) == EVERY_OPTION

    def test_every_option_field_differs_from_its_default(self) -> None:
        """So that the round trip below proves each one survives the stored form; ``cookies``
        (pairs) excludes ``cookie_jar``, and ``trusted_redirect_auth`` excludes an auth scheme:
        both have round trips of their own."""
        at_default = {
            field.name
            for field in fields(Options)
            if getattr(EVERY_OPTION, field.name) == getattr(DEFAULT_OPTIONS, field.name)
        }
        assert at_default == {"cookies", "trusted_redirect_auth"}


class TestOptionsStoredForm:
    @pytest.mark.parametrize(
        ("request_fields", "config"),
        [
            (EVERY_REQUEST_OPTION, EVERY_CONFIG_OPTION),
            (
                {"cookie": [{"name": "a", "value": "1"}]},
                {
                    "hsts": True,
                    "proxy": {"protocol": "http", "host": "p.example"},
                    "proxyAuthBasic": CREDENTIALS,
                    "locationTrusted": CREDENTIALS,
                },
            ),
            ({"authDigest": CREDENTIALS}, {"hsts": False, "ipVersion": 4, "httpVersion": "0.9"}),
            ({"authNtlm": CREDENTIALS}, {"proxy": {"protocol": "https", "host": "p.example"}}),
            ({}, {"resolve": [{"host": "x.example", "port": 1, "address": ["::1"]}]}),
        ],
    )
    def test_round_trip_is_exact(
        self, request_fields: dict[str, Any], config: dict[str, Any]
    ) -> None:
        delivery = compiled(request_fields, config)
        assert delivery.request.options != DEFAULT_OPTIONS
        loaded = round_trip(delivery)
        assert loaded == delivery
        assert loaded.request.options == delivery.request.options

    def test_every_option_survives_with_its_type(self) -> None:
        delivery = compiled(EVERY_REQUEST_OPTION, EVERY_CONFIG_OPTION)
        loaded = round_trip(delivery).request.options
        for field in fields(Options):
            value = getattr(loaded, field.name)
            assert value == getattr(EVERY_OPTION, field.name), field.name
            assert type(value) is type(getattr(EVERY_OPTION, field.name)), field.name
        assert loaded.proxy is not None
        assert type(loaded.proxy.headers) is tuple

    def test_default_options_are_stored_as_null_and_read_back_as_the_shared_default(self) -> None:
        delivery = compiled()
        assert orjson.loads(dump_delivery(delivery))["options"] is None
        assert round_trip(delivery).request.options is DEFAULT_OPTIONS


class TestMultipart:
    def form(self, pairs: list[tuple[str, str]], **request: Any) -> tuple[str, bytes]:
        data = [{"name": name, "value": value} for name, value in pairs]
        compiled_request = compiled({"data": data, **request}).request
        [content_type] = [
            h for h in compiled_request.headers if h.lower().startswith("content-type")
        ]
        assert compiled_request.body is not None
        return content_type, compiled_request.body

    def test_fields_in_order_with_repeats(self) -> None:
        pairs = [("a", "1"), ("b", "two words"), ("a", "3")]
        assert form_fields(*self.form(pairs)) == pairs

    def test_the_exact_encoding(self) -> None:
        content_type, body = self.form([("a", "1"), ("b", "x y")])
        boundary = content_type.split("boundary=", 1)[1]
        assert (
            body
            == (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="a"\r\n\r\n1\r\n'
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="b"\r\n\r\nx y\r\n'
                f"--{boundary}--\r\n"
            ).encode()
        )

    def test_quotes_and_line_breaks_in_names_are_percent_encoded(self) -> None:
        content_type, body = self.form(
            [('say "hi"', "1"), ("line\r\nbreak", "2"), ('x"\nContent-Type: text/html', "3")]
        )
        assert b'name="say %22hi%22"\r\n' in body
        assert b'name="line%0D%0Abreak"\r\n' in body
        assert b'name="x%22%0AContent-Type: text/html"\r\n' in body
        assert form_fields(content_type, body) == [
            ("say %22hi%22", "1"),
            ("line%0D%0Abreak", "2"),
            ("x%22%0AContent-Type: text/html", "3"),
        ]

    def test_values_are_utf8_and_kept_as_given(self) -> None:
        pairs = [("name", "Zoë ✓"), ("quote", 'say "hi"'), ("json", '{"k": [1, 2]}')]
        content_type, body = self.form(pairs)
        assert "Zoë ✓".encode() in body
        assert form_fields(content_type, body) == pairs

    def test_a_content_type_given_by_the_user_gives_way_other_headers_stay(self) -> None:
        request = compiled(
            {
                "data": [{"name": "a", "value": "1"}],
                "headers": {"content-type": "application/x-www-form-urlencoded", "X-A": "1"},
            }
        ).request
        assert request.headers[0] == "X-A: 1"
        [content_type] = request.headers[1:]
        assert content_type.startswith("Content-Type: multipart/form-data; boundary=tasks-")
        assert request.body is not None
        assert form_fields(content_type, request.body) == [("a", "1")]

    def test_each_compilation_draws_a_new_boundary(self) -> None:
        first, _ = self.form([("a", "1")])
        second, _ = self.form([("a", "1")])
        assert first != second

    @pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
    def test_methods_with_a_body(self, method: str) -> None:
        content_type, body = self.form([("a", "1")], method=method)
        assert form_fields(content_type, body) == [("a", "1")]

    def test_the_stored_form_keeps_the_body_and_its_boundary(self) -> None:
        delivery = compiled({"data": [{"name": 'q"', "value": "é"}]})
        assert round_trip(delivery) == delivery
