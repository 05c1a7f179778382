"""The delivery options of a task body (``options.py``): each field's rule and its message, as
the API reports them (the error tree), and the refusal of what the transport cannot honour.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tasks_server.api.errors import error_tree
from tasks_server.dispatch.transport.curl import unsupported_options
from tasks_server.errors import InvalidInput
from tasks_server.options import FORBIDDEN_PROXY_PORTS, ConnectionOptions, refusals
from tasks_server.spec import Config, HttpRequest, TaskSpec
from tasks_server.tasks import parse_spec

NOW = 1_900_000_000_000
URL = "http://target.example/hook"
FETCH_ONLY = "is an option of the browser fetch API; libcurl has no equivalent"
ONE_SCHEME = "Choose one of authBasic, authDigest, authNtlm and authAwsSigv4"
CREDENTIALS = {"username": "user", "password": "pass"}
WITH_PROXY: dict[str, Any] = {"proxy": {"protocol": "http", "host": "proxy.test", "port": 3128}}
AWS = {
    "provider1": "aws",
    "provider2": "amz",
    "region": "eu-west-1",
    "service": "s3",
    "key": "AKIDEXAMPLE",
    "secret": "wJalrXUtnFEMI",
}
JAR = base64.b64encode(b"example.com\tFALSE\t/\tFALSE\t0\tsid\tabc\n").decode()


def body_of(request: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> Any:
    body: dict[str, Any] = {"httpRequest": {"url": URL, "method": "POST", **(request or {})}}
    if config is not None:
        body["config"] = config
    return body


def parse(request: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> TaskSpec:
    return TaskSpec.model_validate_json(
        orjson.dumps(body_of(request, config)), context={"now_ms": NOW, "future": True}
    )


def tree(request: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> Any:
    """The error tree the API answers for this body."""
    with pytest.raises(ValidationError) as invalid:
        parse(request, config)
    return error_tree(list(invalid.value.errors()))


def messages(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    for key, value in node.items():
        if key == "_errors":
            yield from ((path, message) for message in value)
        else:
            yield from messages(value, f"{path}.{key}" if path else key)


def only_error(request: dict[str, Any] | None = None, config: dict[str, Any] | None = None) -> Any:
    """The one (path, message) of the error tree of a body with exactly one problem."""
    found = list(messages(tree(request, config)))
    assert len(found) == 1, found
    return found[0]


def config_error(config: dict[str, Any]) -> Any:
    return only_error(config=config)


def request_error(request: dict[str, Any]) -> Any:
    return only_error(request=request)


def errors_under(found: Any, prefix: str) -> list[str]:
    """Messages at ``prefix`` or below it (union fields nest theirs one level further down)."""
    return [message for path, message in messages(found) if path.startswith(prefix)]


class TestDefaults:
    def test_no_option_is_set_by_default(self) -> None:
        spec = parse()
        request = spec.http_request
        assert (request.cookie, request.auth_basic, request.auth_digest) == (None, None, None)
        assert (request.auth_ntlm, request.auth_aws_sigv4) == (None, None)
        assert ConnectionOptions() == ConnectionOptions.model_validate({})
        config = spec.config
        assert (config.http_version, config.ip_version, config.referer_url) == ("1.1", None, "AUTO")
        assert (config.keep_alive_duration, config.hsts) == (30, None)
        assert (config.session_id, config.insecure, config.location) == (True, False, True)
        assert (config.location_trusted, config.redirect_attempts) == (None, 8)
        assert (config.proto, config.proto_redirect, config.dns_server) == (None, None, None)
        assert (config.resolve, config.doh_url, config.doh_insecure) == (None, None, None)
        assert (config.tls_version, config.tls_max_version) == (None, None)
        assert (config.proxy, config.proxy_headers, config.proxy_insecure) == (None, None, None)
        assert config.proxy_http_version == "1.1"
        assert (config.proxy_auth_basic, config.proxy_auth_digest) == (None, None)
        assert (config.proxy_auth_ntlm, config.ha_proxy_client_ip) == (None, None)
        assert (config.ha_proxy_protocol, config.cert_type, config.key_type) == (None, None, None)
        assert config.cert_status is None
        assert config.model_fields_set == set()

    def test_every_option_shows_in_the_stored_config_under_its_camel_case_name(self) -> None:
        shown = parse().model_dump(mode="json", by_alias=True)
        assert {"cookie", "authBasic", "authDigest", "authNtlm", "authAwsSigv4"} <= set(
            shown["httpRequest"]
        )
        assert {
            "httpVersion",
            "ipVersion",
            "refererUrl",
            "keepAliveDuration",
            "hsts",
            "sessionId",
            "insecure",
            "location",
            "locationTrusted",
            "redirectAttempts",
            "proto",
            "protoRedirect",
            "dnsServer",
            "resolve",
            "dohUrl",
            "dohInsecure",
            "tlsVersion",
            "tlsMaxVersion",
            "proxy",
            "proxyHeaders",
            "proxyInsecure",
            "proxyHttpVersion",
            "proxyAuthBasic",
            "proxyAuthDigest",
            "proxyAuthNtlm",
            "haProxyClientIp",
            "haProxyProtocol",
            "certType",
            "keyType",
            "certStatus",
        } <= set(shown["config"])


class TestCookie:
    def test_pairs(self) -> None:
        pairs = [{"name": "sid", "value": "abc"}, {"name": "lang", "value": "en-US"}]
        cookie = parse({"cookie": pairs}).http_request.cookie
        assert isinstance(cookie, list)
        assert [(c.name, c.value) for c in cookie] == [("sid", "abc"), ("lang", "en-US")]

    def test_one_to_sixteen_pairs(self) -> None:
        pair = {"name": "a", "value": "1"}
        assert len(parse({"cookie": [pair] * 16}).http_request.cookie or []) == 16
        assert errors_under(tree({"cookie": [pair] * 17}), "httpRequest.cookie") == [
            "List should have at most 16 items after validation, not 17",
        ]
        assert "List should have at least 1 item after validation, not 0" in errors_under(
            tree({"cookie": []}), "httpRequest.cookie"
        )

    @pytest.mark.parametrize(
        ("pair", "field", "message"),
        [
            ({"name": "a b", "value": "1"}, "name", "String should match pattern"),
            ({"name": "a;b", "value": "1"}, "name", "String should match pattern"),
            ({"name": "a=b", "value": "1"}, "name", "String should match pattern"),
            ({"name": "", "value": "1"}, "name", "String should have at least 1 character"),
            ({"name": "n" * 65, "value": "1"}, "name", "String should have at most 64"),
            ({"name": "a", "value": "1;2"}, "value", "String should match pattern"),
            ({"name": "a", "value": "1 2"}, "value", "String should match pattern"),
            ({"name": "a", "value": "1\r\nX: y"}, "value", "String should match pattern"),
            ({"name": "a", "value": ""}, "value", "String should have at least 1 character"),
            ({"name": "a", "value": "v" * 513}, "value", "String should have at most 512"),
            ({"name": "a"}, "value", "Field required"),
        ],
    )
    def test_pair_rules(self, pair: dict[str, str], field: str, message: str) -> None:
        found = [
            (path, text)
            for path, text in messages(tree({"cookie": [pair]}))
            if path.startswith("httpRequest.cookie") and path.endswith(f"0.{field}")
        ]
        assert len(found) == 1, found
        assert found[0][1].startswith(message)

    def test_a_value_may_hold_an_equals_sign(self) -> None:
        cookie = parse({"cookie": [{"name": "t", "value": "a=b=="}]}).http_request.cookie
        assert cookie is not None and not isinstance(cookie, str)
        assert cookie[0].value == "a=b=="

    def test_a_string_is_base64_of_a_cookie_jar(self) -> None:
        assert parse({"cookie": JAR}).http_request.cookie == JAR

    @pytest.mark.parametrize(
        "jar", ["not base64!", "QUJDR", base64.b64encode(b"\xff\xfe\x00bad").decode()]
    )
    def test_a_string_that_is_no_base64_text_is_refused(self, jar: str) -> None:
        assert "Cookie must be base64 of a cookie-jar file" in errors_under(
            tree({"cookie": jar}), "httpRequest.cookie"
        )

    @pytest.mark.parametrize("value", [5, True, {"name": "a", "value": "b"}])
    def test_anything_else_is_refused(self, value: Any) -> None:
        assert errors_under(tree({"cookie": value}), "httpRequest.cookie")


class TestAuth:
    @pytest.mark.parametrize("field", ["authBasic", "authDigest", "authNtlm"])
    def test_credentials(self, field: str) -> None:
        request = parse({field: {"username": "u" * 64, "password": "p" * 256}}).http_request
        attribute = {"authBasic": "auth_basic", "authDigest": "auth_digest"}.get(field, "auth_ntlm")
        credentials = getattr(request, attribute)
        assert (credentials.username, credentials.password) == ("u" * 64, "p" * 256)

    @pytest.mark.parametrize("field", ["authBasic", "authDigest", "authNtlm"])
    @pytest.mark.parametrize(
        ("credentials", "where", "message"),
        [
            ({"username": "", "password": "p"}, "username", "String should have at least 1"),
            ({"username": "u" * 65, "password": "p"}, "username", "String should have at most 64"),
            ({"username": "u", "password": ""}, "password", "String should have at least 1"),
            (
                {"username": "u", "password": "p" * 257},
                "password",
                "String should have at most 256",
            ),
            ({"username": "u"}, "password", "Field required"),
            ({"username": 1, "password": "p"}, "username", "Input should be a valid string"),
        ],
    )
    def test_credential_rules(
        self, field: str, credentials: dict[str, Any], where: str, message: str
    ) -> None:
        path, text = request_error({field: credentials})
        assert path == f"httpRequest.{field}.{where}"
        assert text.startswith(message)

    def test_credentials_take_no_other_key(self) -> None:
        assert request_error({"authBasic": {**CREDENTIALS, "realm": "x"}}) == (
            "httpRequest.authBasic",
            "Unrecognized key(s) in object: 'realm'",
        )

    def test_aws_sigv4(self) -> None:
        aws = parse({"authAwsSigv4": AWS}).http_request.auth_aws_sigv4
        assert aws is not None
        assert (aws.provider1, aws.provider2, aws.region, aws.service) == (
            "aws",
            "amz",
            "eu-west-1",
            "s3",
        )
        assert (aws.key, aws.secret) == ("AKIDEXAMPLE", "wJalrXUtnFEMI")

    @pytest.mark.parametrize(
        ("change", "where", "message"),
        [
            ({"provider1": "aw"}, "provider1", "String should have at least 3 characters"),
            ({"provider2": "am"}, "provider2", "String should have at least 3 characters"),
            ({"region": ""}, "region", "String should have at least 1 character"),
            ({"region": "r" * 129}, "region", "String should have at most 128 characters"),
            ({"service": ""}, "service", "String should have at least 1 character"),
            ({"service": "s" * 129}, "service", "String should have at most 128 characters"),
            ({"key": ""}, "key", "String should have at least 1 character"),
            ({"key": "k" * 257}, "key", "String should have at most 256 characters"),
            ({"secret": ""}, "secret", "String should have at least 1 character"),
            ({"secret": "s" * 257}, "secret", "String should have at most 256 characters"),
            ({"secret": None}, "secret", "Input should be a valid string"),
        ],
    )
    def test_aws_sigv4_rules(self, change: dict[str, Any], where: str, message: str) -> None:
        assert request_error({"authAwsSigv4": {**AWS, **change}}) == (
            f"httpRequest.authAwsSigv4.{where}",
            message,
        )

    @pytest.mark.parametrize("missing", sorted(AWS))
    def test_every_aws_sigv4_field_is_required(self, missing: str) -> None:
        aws = {k: v for k, v in AWS.items() if k != missing}
        assert request_error({"authAwsSigv4": aws}) == (
            f"httpRequest.authAwsSigv4.{missing}",
            "Field required",
        )

    @pytest.mark.parametrize(
        "schemes",
        [
            ("authBasic", "authDigest"),
            ("authBasic", "authNtlm"),
            ("authBasic", "authAwsSigv4"),
            ("authDigest", "authNtlm"),
            ("authDigest", "authAwsSigv4"),
            ("authNtlm", "authAwsSigv4"),
            ("authBasic", "authDigest", "authNtlm", "authAwsSigv4"),
        ],
    )
    def test_one_auth_scheme_only(self, schemes: tuple[str, ...]) -> None:
        request = {name: AWS if name == "authAwsSigv4" else CREDENTIALS for name in schemes}
        assert request_error(request) == ("httpRequest", ONE_SCHEME)

    def test_null_schemes_do_not_count(self) -> None:
        request = parse(
            {"authBasic": CREDENTIALS, "authDigest": None, "authNtlm": None, "authAwsSigv4": None}
        ).http_request
        assert request.auth_basic is not None
        assert request.auth_digest is None


class TestFetchOnly:
    @pytest.mark.parametrize("field", ["credentials", "referrerPolicy", "mode"])
    @pytest.mark.parametrize("value", ["include", "no-referrer", "cors", True, 0, {}, []])
    def test_refused_with_a_clear_message(self, field: str, value: Any) -> None:
        assert config_error({field: value}) == (f"config.{field}", f"{field} {FETCH_ONLY}")

    @pytest.mark.parametrize("field", ["credentials", "referrerPolicy", "mode"])
    def test_null_is_absent(self, field: str) -> None:
        assert parse(config={field: None}).config == Config()

    def test_they_belong_to_config_only(self) -> None:
        assert request_error({"mode": "cors"}) == (
            "httpRequest",
            "Unrecognized key(s) in object: 'mode'",
        )


class TestConnectionFields:
    @pytest.mark.parametrize(
        ("config", "attribute", "expected"),
        [
            ({"httpVersion": "0.9"}, "http_version", "0.9"),
            ({"httpVersion": "2-prior-knowledge"}, "http_version", "2-prior-knowledge"),
            ({"httpVersion": "3"}, "http_version", "3"),
            ({"ipVersion": 4}, "ip_version", 4),
            ({"ipVersion": 6}, "ip_version", 6),
            ({"refererUrl": "auto"}, "referer_url", "AUTO"),
            ({"refererUrl": "Auto"}, "referer_url", "AUTO"),
            (
                {"refererUrl": "https://ref.example/p?q=1"},
                "referer_url",
                "https://ref.example/p?q=1",
            ),
            ({"keepAliveDuration": 0}, "keep_alive_duration", 0),
            ({"keepAliveDuration": 259_200}, "keep_alive_duration", 259_200),
            ({"hsts": True}, "hsts", True),
            ({"hsts": False}, "hsts", False),
            ({"hsts": JAR}, "hsts", JAR),
            ({"sessionId": False}, "session_id", False),
            ({"insecure": True}, "insecure", True),
            ({"location": False}, "location", False),
            ({"redirectAttempts": 0}, "redirect_attempts", 0),
            ({"redirectAttempts": 32}, "redirect_attempts", 32),
            ({"proto": "HTTPS"}, "proto", "https"),
            ({"protoRedirect": "Http"}, "proto_redirect", "http"),
            (
                {"dnsServer": ["1.1.1.1", "2606:4700:4700::1111"]},
                "dns_server",
                ["1.1.1.1", "2606:4700:4700::1111"],
            ),
            ({"dnsServer": ["2001:DB8:0:0::1"]}, "dns_server", ["2001:db8::1"]),
            (
                {"dohUrl": "https://doh.example/dns-query"},
                "doh_url",
                "https://doh.example/dns-query",
            ),
            ({"dohInsecure": True}, "doh_insecure", True),
            ({"tlsVersion": "1.0"}, "tls_version", "1.0"),
            ({"tlsMaxVersion": "1.3"}, "tls_max_version", "1.3"),
            (
                {"proxyHeaders": {"X-Proxy-Token": "t"}, **WITH_PROXY},
                "proxy_headers",
                {"X-Proxy-Token": "t"},
            ),
            ({"proxyInsecure": True, **WITH_PROXY}, "proxy_insecure", True),
            ({"proxyHttpVersion": "1.0", **WITH_PROXY}, "proxy_http_version", "1.0"),
            ({"haProxyClientIp": "192.0.2.7"}, "ha_proxy_client_ip", "192.0.2.7"),
            ({"haProxyClientIp": "2001:DB8::7"}, "ha_proxy_client_ip", "2001:db8::7"),
            ({"haProxyProtocol": True}, "ha_proxy_protocol", True),
            ({"certType": "p12"}, "cert_type", "P12"),
            ({"certType": "Eng"}, "cert_type", "ENG"),
            ({"keyType": "der"}, "key_type", "DER"),
            ({"certStatus": True}, "cert_status", True),
        ],
    )
    def test_accepted(self, config: dict[str, Any], attribute: str, expected: Any) -> None:
        assert getattr(parse(config=config).config, attribute) == expected

    @pytest.mark.parametrize(
        "field", ["locationTrusted", "proxyAuthBasic", "proxyAuthDigest", "proxyAuthNtlm"]
    )
    def test_credentials_fields(self, field: str) -> None:
        proxy = WITH_PROXY if field.startswith("proxy") else {}
        config = {field: CREDENTIALS, **proxy}
        assert parse(config=config).config.model_dump(by_alias=True)[field] == CREDENTIALS
        assert config_error({field: {"username": "u", "password": ""}, **proxy}) == (
            f"config.{field}.password",
            "String should have at least 1 character",
        )

    @pytest.mark.parametrize(
        ("config", "message"),
        [
            (
                {"httpVersion": "1.2"},
                "Input should be '0.9', '1.0', '1.1', '2', '2-prior-knowledge' or '3'",
            ),
            (
                {"httpVersion": 2},
                "Input should be '0.9', '1.0', '1.1', '2', '2-prior-knowledge' or '3'",
            ),
            ({"ipVersion": 5}, "Input should be 4 or 6"),
            ({"ipVersion": "4"}, "Input should be 4 or 6"),
            ({"keepAliveDuration": -1}, "Input should be greater than or equal to 0"),
            ({"keepAliveDuration": 259_201}, "Input should be less than or equal to 259200"),
            ({"keepAliveDuration": 1.5}, "Input should be a valid integer"),
            ({"sessionId": "false"}, "Input should be a valid boolean"),
            ({"insecure": 1}, "Input should be a valid boolean"),
            ({"location": "no"}, "Input should be a valid boolean"),
            ({"redirectAttempts": -1}, "Input should be greater than or equal to 0"),
            ({"redirectAttempts": 33}, "Input should be less than or equal to 32"),
            ({"proto": "ftp"}, "Input should be 'http' or 'https'"),
            ({"protoRedirect": "file"}, "Input should be 'http' or 'https'"),
            ({"dnsServer": []}, "List should have at least 1 item after validation, not 0"),
            (
                {"dnsServer": ["1.1.1.1"] * 5},
                "List should have at most 4 items after validation, not 5",
            ),
            (
                {"dohUrl": "ftp://doh.example"},
                "URL must start with either http or https and name a host",
            ),
            ({"dohInsecure": "yes"}, "Input should be a valid boolean"),
            ({"tlsVersion": "1.4"}, "Input should be '1.0', '1.1', '1.2' or '1.3'"),
            ({"tlsVersion": "SSLv3"}, "Input should be '1.0', '1.1', '1.2' or '1.3'"),
            ({"tlsMaxVersion": 1.2}, "Input should be '1.0', '1.1', '1.2' or '1.3'"),
            ({"proxyHeaders": []}, "Expected an object of strings"),
            ({"proxyHttpVersion": "2"}, "Input should be '1.0' or '1.1'"),
            ({"haProxyClientIp": "300.1.1.1"}, "'300.1.1.1' is not an IP address"),
            ({"haProxyClientIp": "proxy.example"}, "'proxy.example' is not an IP address"),
            ({"haProxyProtocol": "on"}, "Input should be a valid boolean"),
            ({"certType": "CRT"}, "Input should be 'DER', 'ENG', 'P12' or 'PEM'"),
            ({"keyType": "P12"}, "Input should be 'DER', 'ENG' or 'PEM'"),
            ({"certStatus": "true"}, "Input should be a valid boolean"),
        ],
    )
    def test_refused(self, config: dict[str, Any], message: str) -> None:
        [field] = config
        assert config_error(config) == (f"config.{field}", message)

    @pytest.mark.parametrize(
        ("value", "path", "message"),
        [
            (
                ["1.1.1.1", "dns.example"],
                "config.dnsServer.1",
                "'dns.example' is not an IP address",
            ),
            (["[::1]"], "config.dnsServer.0", "'[::1]' is not an IP address"),
        ],
    )
    def test_dns_servers_are_ip_addresses(self, value: list[str], path: str, message: str) -> None:
        assert config_error({"dnsServer": value}) == (path, message)

    @pytest.mark.parametrize(
        ("headers", "message"),
        [
            ({"bad key": "v"}, "Invalid key format: 'bad key'"),
            ({"X-A": ""}, "Value of 'X-A' must be a string of 1 to 1024 characters"),
            ({"X-A": "a\r\nX-Injected: 1"}, "Value of 'X-A' must not contain control characters"),
        ],
    )
    def test_proxy_headers_follow_the_header_rules(
        self, headers: dict[str, str], message: str
    ) -> None:
        assert config_error({"proxyHeaders": headers}) == ("config.proxyHeaders", message)

    @pytest.mark.parametrize("referer", ["ftp://ref.example", "ref.example/page", "AUTOMATIC"])
    def test_referer_is_auto_or_a_url(self, referer: str) -> None:
        assert "URL must start with either http or https and name a host" in errors_under(
            tree(config={"refererUrl": referer}), "config.refererUrl"
        )

    @pytest.mark.parametrize("hsts", ["not base64!", 1])
    def test_hsts_is_a_boolean_or_base64_of_a_file(self, hsts: Any) -> None:
        assert errors_under(tree(config={"hsts": hsts}), "config.hsts")


class TestProxy:
    @pytest.mark.parametrize(
        ("proxy", "expected"),
        [
            ({"protocol": "http", "host": "proxy.example"}, ("http", "proxy.example", None)),
            (
                {"protocol": "HTTPS", "host": "proxy.example", "port": 8443},
                ("https", "proxy.example", 8443),
            ),
            ({"protocol": "http", "host": "10.0.0.1", "port": 3128}, ("http", "10.0.0.1", 3128)),
            ({"protocol": "http", "host": "localhost", "port": 1}, ("http", "localhost", 1)),
            (
                {"protocol": "http", "host": "p.example", "port": 65535},
                ("http", "p.example", 65535),
            ),
        ],
    )
    def test_accepted(self, proxy: dict[str, Any], expected: tuple[Any, ...]) -> None:
        found = parse(config={"proxy": proxy}).config.proxy
        assert found is not None
        assert (found.protocol, found.host, found.port) == expected

    @pytest.mark.parametrize("port", FORBIDDEN_PROXY_PORTS)
    def test_ports_of_other_services_are_refused(self, port: int) -> None:
        proxy = {"protocol": "http", "host": "proxy.example", "port": port}
        assert config_error({"proxy": proxy}) == ("config.proxy.port", "Invalid proxy port")

    def test_the_forbidden_ports(self) -> None:
        assert sorted(FORBIDDEN_PROXY_PORTS) == [20, 21, 22, 23, 25, 53]

    @pytest.mark.parametrize("port", [19, 24, 26, 52, 54, 80, 443, 1080, 3128, 8080])
    def test_the_ports_around_them_are_fine(self, port: int) -> None:
        proxy = parse(config={"proxy": {"protocol": "http", "host": "p.example", "port": port}})
        assert proxy.config.proxy is not None
        assert proxy.config.proxy.port == port

    @pytest.mark.parametrize(
        ("proxy", "where", "message"),
        [
            (
                {"protocol": "socks5", "host": "p.example"},
                "protocol",
                "Input should be 'http' or 'https'",
            ),
            (
                {"protocol": "http", "host": "p.example", "port": 0},
                "port",
                "Input should be greater than or equal to 1",
            ),
            (
                {"protocol": "http", "host": "p.example", "port": 65536},
                "port",
                "Input should be less than or equal to 65535",
            ),
            (
                {"protocol": "http", "host": "p.example", "port": "3128"},
                "port",
                "Input should be a valid integer",
            ),
            (
                {"protocol": "http", "host": "p_x.example"},
                "host",
                "'p_x.example' is not a host name",
            ),
            (
                {"protocol": "http", "host": "p.example:3128"},
                "host",
                "'p.example:3128' is not a host name",
            ),
            ({"protocol": "http", "host": "-p.example"}, "host", "'-p.example' is not a host name"),
            (
                {"protocol": "http", "host": "a" * 64 + ".example"},
                "host",
                f"'{'a' * 64}.example' is not a host name",
            ),
            (
                {"protocol": "http", "host": ("a" * 60 + ".") * 2 + "example"},
                "host",
                "String should have at most 128 characters",
            ),
            ({"protocol": "http"}, "host", "Field required"),
            ({"host": "p.example"}, "protocol", "Field required"),
        ],
    )
    def test_refused(self, proxy: dict[str, Any], where: str, message: str) -> None:
        assert config_error({"proxy": proxy}) == (f"config.proxy.{where}", message)

    def test_no_other_key(self) -> None:
        proxy = {"protocol": "http", "host": "p.example", "user": "x"}
        assert config_error({"proxy": proxy}) == (
            "config.proxy",
            "Unrecognized key(s) in object: 'user'",
        )


class TestResolve:
    def entry(self, **change: Any) -> dict[str, Any]:
        return {"host": "api.example", "port": 443, "address": ["127.0.0.1"], **change}

    def test_entries(self) -> None:
        entries = [
            self.entry(),
            self.entry(host="*", port=80, address=["10.0.0.1", "::1", "192.0.2.1", "fe80::1"]),
        ]
        resolve = parse(config={"resolve": entries}).config.resolve
        assert resolve is not None
        assert [(e.host, e.port, e.address) for e in resolve] == [
            ("api.example", 443, ["127.0.0.1"]),
            ("*", 80, ["10.0.0.1", "::1", "192.0.2.1", "fe80::1"]),
        ]

    def test_ipv6_addresses_are_bare_and_normalised(self) -> None:
        resolve = parse(
            config={"resolve": [self.entry(address=["2001:DB8:0:0:0:0:0:1", "0:0::1"])]}
        ).config.resolve
        assert resolve is not None
        assert resolve[0].address == ["2001:db8::1", "::1"]

    @pytest.mark.parametrize("address", ["[::1]", "[2001:db8::1]"])
    def test_ipv6_in_brackets_is_refused(self, address: str) -> None:
        assert config_error({"resolve": [self.entry(address=[address])]}) == (
            "config.resolve.0.address.0",
            f"'{address}' is not an IP address",
        )

    @pytest.mark.parametrize(
        ("change", "where", "message"),
        [
            ({"port": 22}, "port", "Port 22 is not allowed"),
            ({"port": 0}, "port", "Input should be greater than or equal to 1"),
            ({"port": 65536}, "port", "Input should be less than or equal to 65535"),
            ({"host": "api_x.example"}, "host", "'api_x.example' is not a host name"),
            ({"host": "*.example"}, "host", "'*.example' is not a host name"),
            ({"host": "api.example:443"}, "host", "'api.example:443' is not a host name"),
            (
                {"address": []},
                "address",
                "List should have at least 1 item after validation, not 0",
            ),
            (
                {"address": ["127.0.0.1"] * 5},
                "address",
                "List should have at most 4 items after validation, not 5",
            ),
            ({"address": ["127.0.0.256"]}, "address.0", "'127.0.0.256' is not an IP address"),
            ({"address": ["localhost"]}, "address.0", "'localhost' is not an IP address"),
            ({"address": "127.0.0.1"}, "address", "Input should be a valid array"),
        ],
    )
    def test_refused(self, change: dict[str, Any], where: str, message: str) -> None:
        assert config_error({"resolve": [self.entry(**change)]}) == (
            f"config.resolve.0.{where}",
            message,
        )

    def test_other_ports_are_fine(self) -> None:
        for port in (1, 21, 23, 25, 53, 65535):
            resolve = parse(config={"resolve": [self.entry(port=port)]}).config.resolve
            assert resolve is not None
            assert resolve[0].port == port

    def test_one_to_four_entries(self) -> None:
        assert len(parse(config={"resolve": [self.entry()] * 4}).config.resolve or []) == 4
        assert config_error({"resolve": [self.entry()] * 5}) == (
            "config.resolve",
            "List should have at most 4 items after validation, not 5",
        )
        assert config_error({"resolve": []}) == (
            "config.resolve",
            "List should have at least 1 item after validation, not 0",
        )


UNSUPPORTED = {
    "authNtlm": "NTLM is not here",
    "proxyAuthNtlm": "NTLM is not here",
    "httpVersion=3": "HTTP/3 is not here",
    "dnsServer": "no c-ares",
    "hsts": "no HSTS",
}


def refused_by(
    unsupported: dict[str, str],
    request: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
) -> Any:
    spec = parse(request, config)
    return refusals(spec.http_request, spec.config, unsupported)


class TestRefusals:
    def test_nothing_set_nothing_refused(self) -> None:
        assert refused_by(UNSUPPORTED) is None
        assert refused_by(UNSUPPORTED, {"authBasic": CREDENTIALS}, {"httpVersion": "2"}) is None

    def test_a_request_option(self) -> None:
        assert refused_by(UNSUPPORTED, {"authNtlm": CREDENTIALS}) == {
            "_errors": [],
            "httpRequest": {"_errors": [], "authNtlm": {"_errors": ["NTLM is not here"]}},
        }

    def test_a_config_option(self) -> None:
        assert refused_by(UNSUPPORTED, config={"dnsServer": ["1.1.1.1"]}) == {
            "_errors": [],
            "config": {"_errors": [], "dnsServer": {"_errors": ["no c-ares"]}},
        }

    def test_one_value_of_an_option(self) -> None:
        assert refused_by(UNSUPPORTED, config={"httpVersion": "3"}) == {
            "_errors": [],
            "config": {"_errors": [], "httpVersion": {"_errors": ["HTTP/3 is not here"]}},
        }
        for version in ("0.9", "1.0", "1.1", "2", "2-prior-knowledge"):
            assert refused_by(UNSUPPORTED, config={"httpVersion": version}) is None

    def test_an_option_switched_off_or_null_is_not_refused(self) -> None:
        assert refused_by(UNSUPPORTED, config={"hsts": False}) is None
        assert refused_by(UNSUPPORTED, config={"hsts": None, "dnsServer": None}) is None
        assert refused_by(UNSUPPORTED, {"authNtlm": None}) is None
        assert refused_by(UNSUPPORTED, config={"hsts": True}) == {
            "_errors": [],
            "config": {"_errors": [], "hsts": {"_errors": ["no HSTS"]}},
        }

    def test_every_refused_option_is_named_in_both_sections(self) -> None:
        found = refused_by(
            UNSUPPORTED,
            {"authNtlm": CREDENTIALS},
            {
                "httpVersion": "3",
                "dnsServer": ["1.1.1.1"],
                "proxy": {"protocol": "http", "host": "p.example"},
                "proxyAuthNtlm": CREDENTIALS,
            },
        )
        assert found == {
            "_errors": [],
            "httpRequest": {"_errors": [], "authNtlm": {"_errors": ["NTLM is not here"]}},
            "config": {
                "_errors": [],
                "httpVersion": {"_errors": ["HTTP/3 is not here"]},
                "dnsServer": {"_errors": ["no c-ares"]},
                "proxyAuthNtlm": {"_errors": ["NTLM is not here"]},
            },
        }

    def test_an_empty_map_refuses_nothing(self) -> None:
        assert refused_by({}, {"authNtlm": CREDENTIALS}, {"dnsServer": ["1.1.1.1"]}) is None

    def test_parse_spec_answers_the_refusals_as_invalid_input(self) -> None:
        body = orjson.dumps(body_of({"authNtlm": CREDENTIALS}, {"httpVersion": "3"}))
        with pytest.raises(InvalidInput) as refused:
            parse_spec(body, NOW, unsupported=UNSUPPORTED)
        assert refused.value.detail == {
            "_errors": [],
            "httpRequest": {"_errors": [], "authNtlm": {"_errors": ["NTLM is not here"]}},
            "config": {"_errors": [], "httpVersion": {"_errors": ["HTTP/3 is not here"]}},
        }
        spec = parse_spec(body, NOW)
        assert spec.http_request.auth_ntlm is not None

    def test_parse_spec_validates_before_it_refuses(self) -> None:
        body = orjson.dumps(body_of({"authNtlm": CREDENTIALS}, {"retry": -1}))
        with pytest.raises(ValidationError):
            parse_spec(body, NOW, unsupported=UNSUPPORTED)


class TestUnsupportedOptionsOfThisLibcurl:
    def test_every_key_names_an_option_and_every_reason_is_given(self) -> None:
        names = {field.alias for field in HttpRequest.model_fields.values()} | {
            field.alias for field in Config.model_fields.values()
        }
        found = unsupported_options()
        for key, reason in found.items():
            assert key.split("=", 1)[0] in names, key
            assert isinstance(reason, str)
            assert reason

    def test_ntlm_is_refused_for_the_target_and_the_proxy_alike(self) -> None:
        found = unsupported_options()
        assert ("authNtlm" in found) == ("proxyAuthNtlm" in found)
