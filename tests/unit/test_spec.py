"""The registration body: every field's rule, its message, its default, and strictness.

Bodies are validated from JSON, as the API does, with the time passed in the context.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from tasks_server.spec import DEFAULT_USER_AGENT, Config, TaskSpec

NOW = 1_900_000_000_000
FUTURE = {"now_ms": NOW, "future": True}
URL = "http://target.example/hook"
PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
PEM_BLOB = base64.b64encode(PEM).decode()


def body_of(
    request: dict[str, Any] | None = None, config: dict[str, Any] | None = None, **rest: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"httpRequest": {"url": URL, "method": "POST", **(request or {})}}
    if config is not None:
        body["config"] = config
    body.update(rest)
    return body


def parse(body: Any, context: dict[str, Any] | None = FUTURE) -> TaskSpec:
    return TaskSpec.model_validate_json(orjson.dumps(body), context=context)


def valid(
    request: dict[str, Any] | None = None, config: dict[str, Any] | None = None, **rest: Any
) -> TaskSpec:
    return parse(body_of(request, config, **rest))


def problems(body: Any, context: dict[str, Any] | None = FUTURE) -> list[tuple[str, str]]:
    """(dotted path, message) of every error; union branch names stay in the path."""
    with pytest.raises(ValidationError) as invalid:
        parse(body, context)
    return [
        (".".join(str(part) for part in error["loc"]), error["msg"].removeprefix("Value error, "))
        for error in invalid.value.errors()
    ]


def assert_refused(body: Any, path: str, message: str, **kwargs: Any) -> None:
    found = problems(body, **kwargs)
    assert any(
        where.startswith(path) and message in text for where, text in found
    ), f"expected {message!r} at {path!r}, got {found}"


class TestDefaults:
    def test_a_minimal_body(self) -> None:
        spec = parse({"httpRequest": {"url": URL, "method": "GET"}})
        request = spec.http_request
        assert (request.url, request.method) == (URL, "GET")
        assert (request.query, request.headers, request.data, request.transport) == (None,) * 4
        assert spec.metadata is None
        config = spec.config
        assert config.time_zone == "UTC"
        assert config.execution_delay == 1
        assert config.execute_at is None
        assert config.execute_immediately is False
        assert config.retry == 0
        assert config.retry_at is None
        assert config.retry_interval == 1
        assert config.retry_exponential is False
        assert config.ignore_status_code == []
        assert config.timeout == 30_000
        assert config.timeout_at is None
        assert config.user_agent == DEFAULT_USER_AGENT
        assert config.trace_response_data is True
        assert (config.ca, config.cert, config.key) == (None, None, None)
        assert config == Config()

    def test_a_stored_body_reads_back_to_the_same_spec_without_the_time(self) -> None:
        """The API stores the body as given and reads it back without a context."""
        body = body_of(
            {"headers": {"A": "1"}, "data": {"k": "v"}},
            {
                "executeAt": "Jun 1 2030 7:00 AM",
                "retryAt": 1_906_502_460_000,
                "timeZone": "Asia/Jakarta",
            },
            metadata={"tag": "a"},
        )
        spec = parse(body)
        assert spec.config.execute_at == 1_906_502_400_000
        assert parse(body, context=None) == spec


class TestStrictness:
    @pytest.mark.parametrize(
        ("body", "path"),
        [
            (body_of(extra=1), "extra"),
            (body_of({"body": "x"}), "httpRequest.body"),
            (body_of(config={"retries": 3}), "config.retries"),
            (body_of(config={"cert": {"value": PEM_BLOB, "pass": "x"}}), "config.cert.pass"),
            (body_of({"data": [{"name": "a", "value": "b", "type": "c"}]}), "httpRequest.data"),
        ],
    )
    def test_unknown_keys_are_refused_at_every_level(self, body: Any, path: str) -> None:
        assert_refused(body, path, "Extra inputs are not permitted")

    @pytest.mark.parametrize(
        ("config", "path"),
        [
            ({"retry": "5"}, "config.retry"),
            ({"retry": 5.5}, "config.retry"),
            ({"executionDelay": "1000"}, "config.executionDelay"),
            ({"timeout": True}, "config.timeout"),
            ({"retryExponential": "true"}, "config.retryExponential"),
            ({"executeImmediately": 1}, "config.executeImmediately"),
            ({"traceResponseData": "no"}, "config.traceResponseData"),
            ({"ignoreStatusCode": ["404"]}, "config.ignoreStatusCode.0"),
            ({"ignoreStatusCode": 404}, "config.ignoreStatusCode"),
            ({"userAgent": 12345678}, "config.userAgent"),
        ],
    )
    def test_values_are_not_coerced(self, config: dict[str, Any], path: str) -> None:
        assert [where for where, _ in problems(body_of(config=config))] == [path]

    @pytest.mark.parametrize("body", [[], "x", None, {"httpRequest": "x"}, body_of(config=[])])
    def test_objects_must_be_objects(self, body: Any) -> None:
        assert problems(body)

    def test_http_request_is_required(self) -> None:
        assert problems({"config": {}}) == [("httpRequest", "Field required")]

    @pytest.mark.parametrize("missing", ["url", "method"])
    def test_url_and_method_are_required(self, missing: str) -> None:
        request = {"url": URL, "method": "GET"}
        del request[missing]
        assert problems({"httpRequest": request}) == [
            (f"httpRequest.{missing}", "Field required")
        ]


class TestUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "http://target.example",
            "https://target.example/hook",
            "HTTPS://TARGET.EXAMPLE/a",
            "http://127.0.0.1:8080/a/b?c=d",
            "http://user:pw@target.example/a",
            "http://t.example/" + "a" * (1024 - len("http://t.example/")),
        ],
    )
    def test_accepted(self, url: str) -> None:
        assert valid({"url": url}).http_request.url == url

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://target.example/a",
            "target.example/a",
            "http://",
            "http:///path",
            "http://@target.example/a",
            "http://:80/a",
            "http://target.example/a b",
            "http://target.example/a\x00b",
            "http://target.example/a\x7f",
            "",
        ],
    )
    def test_must_be_http_or_https_and_name_a_host(self, url: str) -> None:
        assert problems(body_of({"url": url})) == [
            ("httpRequest.url", "URL must start with either http or https and name a host")
        ]

    @pytest.mark.parametrize(
        ("url", "message"),
        [
            ("http://t.example:99999/a", "Port out of range"),
            ("http://t.example:port/a", "Invalid URL"),
            ("http://[::1/a", "Invalid URL"),
        ],
    )
    def test_the_host_and_port_must_parse(self, url: str, message: str) -> None:
        assert_refused(body_of({"url": url}), "httpRequest.url", message)

    @pytest.mark.parametrize("url", [12, None, "http://t.example/" + "a" * 1008])
    def test_a_string_of_at_most_1024_characters(self, url: Any) -> None:
        assert problems(body_of({"url": url})) == [
            ("httpRequest.url", "URL must be a string of at most 1024 characters")
        ]

    @pytest.mark.parametrize(
        "url", ["http://target.example/", "http://target.example/hook/", "http://t.example/a?"]
    )
    def test_a_trailing_slash_or_question_mark_is_fine(self, url: str) -> None:
        """Unlike the original (docs/api.md)."""
        assert valid({"url": url}).http_request.url == url


class TestMethod:
    @pytest.mark.parametrize("method", ["GET", "post", "Put", "pAtCh", "delete"])
    def test_case_insensitive(self, method: str) -> None:
        assert valid({"method": method}).http_request.method == method.upper()

    @pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "", 1, None])
    def test_refused(self, method: Any) -> None:
        assert problems(body_of({"method": method})) == [
            ("httpRequest.method", "Method must be one of GET, POST, PUT, PATCH, DELETE")
        ]


class TestQueryAndHeaders:
    @pytest.mark.parametrize("field", ["query", "headers"])
    def test_an_object_of_strings(self, field: str) -> None:
        value = {"a$_.-[]Z9": "x" * 1024, "k" * 64: "v"}
        assert getattr(valid({field: value}).http_request, field) == value

    @pytest.mark.parametrize(
        ("value", "message"),
        [
            ("k=v", "Expected an object of strings"),
            (["k"], "Expected an object of strings"),
            ({"bad key": "v"}, "Invalid key format: 'bad key'"),
            ({"": "v"}, "Invalid key format: ''"),
            ({"k" * 65: "v"}, "Invalid key format"),
            ({"k": ""}, "Value of 'k' must be a string of 1 to 1024 characters"),
            ({"k": "v" * 1025}, "Value of 'k' must be a string of 1 to 1024 characters"),
            ({"k": 5}, "Value of 'k' must be a string of 1 to 1024 characters"),
            ({"k": "a\r\nInjected: 1"}, "Value of 'k' must not contain control characters"),
            ({"k": "a\x00b"}, "Value of 'k' must not contain control characters"),
            ({"k": "a\x7f"}, "Value of 'k' must not contain control characters"),
        ],
    )
    @pytest.mark.parametrize("field", ["query", "headers"])
    def test_refused(self, field: str, value: Any, message: str) -> None:
        assert_refused(body_of({field: value}), f"httpRequest.{field}", message)

    @pytest.mark.parametrize("field", ["query", "headers"])
    def test_null_is_none(self, field: str) -> None:
        assert getattr(valid({field: None}).http_request, field) is None

    def test_user_agent_headers_are_dropped_whatever_their_case(self) -> None:
        headers = {"User-Agent": "a", "user-agent": "b", "USER-AGENT": "c", "X-Keep": "1"}
        assert valid({"headers": headers}).http_request.headers == {"X-Keep": "1"}


class TestData:
    @pytest.mark.parametrize(
        "data",
        [
            "x",
            "é" * 4096,
            [{"name": "a", "value": "b"}],
            [{"name": f"f{i}", "value": "v"} for i in range(64)],
            [{"name": "n" * 64, "value": "v" * 4096}],
            {},
            {"a": 1, "b": 1.5, "c": True, "d": None, "e": "s" * 4096},
            {"level1": {"level2": {"level3": "deep"}}},
        ],
    )
    def test_accepted_forms(self, data: Any) -> None:
        parsed = valid({"data": data}).http_request.data
        if isinstance(data, list):
            assert isinstance(parsed, list)
            assert [(item.name, item.value) for item in parsed] == [
                (item["name"], item["value"]) for item in data
            ]
        else:
            assert parsed == data

    @pytest.mark.parametrize(
        ("data", "path", "message"),
        [
            ("", "httpRequest.data", "at least 1 character"),
            ("x" * 4097, "httpRequest.data", "at most 4096 characters"),
            (5, "httpRequest.data", "Data must be a string, an array of {name, value} pairs"),
            (True, "httpRequest.data", "Data must be a string, an array of {name, value} pairs"),
            (0.5, "httpRequest.data", "Data must be a string, an array of {name, value} pairs"),
            ([], "httpRequest.data", "at least 1 item"),
            ([{"name": "a", "value": "b"}] * 65, "httpRequest.data", "at most 64 items"),
            ([{"name": "", "value": "b"}], "httpRequest.data", "at least 1 character"),
            ([{"name": "n" * 65, "value": "b"}], "httpRequest.data", "at most 64 characters"),
            ([{"name": "a", "value": "v" * 4097}], "httpRequest.data", "at most 4096"),
            ([{"name": "a"}], "httpRequest.data", "Field required"),
            (["a"], "httpRequest.data", "Input should be an object"),
            ({"a": {"b": {"c": {"d": 1}}}}, "httpRequest.data", "may nest at most 3 levels"),
            ({"bad key": 1}, "httpRequest.data", "Invalid key format: 'bad key'"),
            ({"a": {"bad key": 1}}, "httpRequest.data", "Invalid key format: 'bad key'"),
            ({"a": "s" * 4097}, "httpRequest.data", "Value of 'a' must have at most 4096"),
            ({"a": [1, 2]}, "httpRequest.data", "Value of 'a' must be a string, number"),
        ],
    )
    def test_refused(self, data: Any, path: str, message: str) -> None:
        assert_refused(body_of({"data": data}), path, message)

    @pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity"])
    def test_json_numbers_must_be_finite(self, number: bytes) -> None:
        raw = b'{"httpRequest": {"url": "http://t.example/a", "method": "POST", "data": {"a": '
        with pytest.raises(ValidationError) as invalid:
            TaskSpec.model_validate_json(raw + number + b"}}}", context=FUTURE)
        assert [error["msg"] for error in invalid.value.errors()] == [
            "Value error, Value of 'a' must be a finite number"
        ]


class TestTransport:
    @pytest.mark.parametrize("transport", ["fetch", "curl", None])
    def test_accepted_for_compatibility(self, transport: str | None) -> None:
        assert valid({"transport": transport}).http_request.transport == transport

    def test_anything_else_is_refused(self) -> None:
        assert [where for where, _ in problems(body_of({"transport": "http2"}))] == [
            "httpRequest.transport"
        ]


class TestNumbers:
    @pytest.mark.parametrize(
        ("field", "low", "high"),
        [
            ("executionDelay", 0, 2**53 - 1),
            ("retry", 0, 2**53 - 1),
            ("retryInterval", 1, 2**53 - 1),
            ("timeout", 1_000, 2**53 - 1),
        ],
    )
    def test_bounds(self, field: str, low: int, high: int) -> None:
        valid(config={field: low})
        valid(config={field: high})
        assert_refused(body_of(config={field: low - 1}), f"config.{field}", "greater than or equal")
        assert_refused(body_of(config={field: high + 1}), f"config.{field}", "less than or equal")

    def test_ignore_status_code_holds_up_to_40_codes_in_400_599(self) -> None:
        codes = list(range(400, 440))
        assert valid(config={"ignoreStatusCode": codes}).config.ignore_status_code == codes
        assert valid(config={"ignoreStatusCode": [599]}).config.ignore_status_code == [599]
        assert_refused(body_of(config={"ignoreStatusCode": [*codes, 440]}), "config", "at most 40")
        assert_refused(
            body_of(config={"ignoreStatusCode": [399]}),
            "config.ignoreStatusCode.0",
            "greater than or equal to 400",
        )
        assert_refused(
            body_of(config={"ignoreStatusCode": [404, 600]}),
            "config.ignoreStatusCode.1",
            "less than or equal to 599",
        )

    def test_user_agent_has_8_to_256_characters(self) -> None:
        assert valid(config={"userAgent": "a" * 8}).config.user_agent == "a" * 8
        assert valid(config={"userAgent": "a" * 256}).config.user_agent == "a" * 256
        assert_refused(body_of(config={"userAgent": "a" * 7}), "config.userAgent", "at least 8")
        assert_refused(body_of(config={"userAgent": "a" * 257}), "config.userAgent", "at most 256")


class TestDates:
    @pytest.mark.parametrize(
        ("value", "zone", "expected"),
        [
            (NOW + 1, "UTC", NOW + 1),
            ("2030-06-01T00:00:00Z", "UTC", 1_906_502_400_000),
            ("2030-06-01T07:00:00+07:00", "UTC", 1_906_502_400_000),
            ("2030-06-01T07:00:00", "Asia/Jakarta", 1_906_502_400_000),
            ("Jun 1 2030 7:00:00 AM", "Asia/Jakarta", 1_906_502_400_000),
            ("Jun 1 2030 12:00:00 AM +00:00", "Asia/Jakarta", 1_906_502_400_000),
            ("Jun 1 2030", "UTC", 1_906_502_400_000),
        ],
    )
    def test_execute_at_forms(self, value: Any, zone: str, expected: int) -> None:
        config = valid(config={"executeAt": value, "timeZone": zone}).config
        assert config.execute_at == expected

    @pytest.mark.parametrize("value", ["garbage", "Jun 1", "", True, 1.5, -5, [NOW + 5]])
    def test_an_invalid_date(self, value: Any) -> None:
        assert problems(body_of(config={"executeAt": value})) == [
            ("config.executeAt", "Invalid execute date")
        ]

    @pytest.mark.parametrize("value", [NOW, NOW - 1, "2020-01-01T00:00:00Z"])
    def test_execute_at_must_be_later_than_now(self, value: Any) -> None:
        assert problems(body_of(config={"executeAt": value})) == [
            ("config.executeAt", "Execution date must be greater than today")
        ]

    def test_without_a_context_past_dates_are_accepted(self) -> None:
        """A stored spec read back is not checked against the time again."""
        body = body_of(config={"executeAt": 5, "retryAt": 6, "timeoutAt": 7})
        config = parse(body, context=None).config
        assert (config.execute_at, config.retry_at, config.timeout_at) == (5, 6, 7)

    def test_a_context_may_check_only_some_dates(self) -> None:
        body = body_of(config={"executeAt": NOW - 10, "retryAt": NOW + 5_000})
        context = {**FUTURE, "dates": {"retryAt"}}
        assert parse(body, context).config.execute_at == NOW - 10
        late = body_of(config={"executeAt": NOW - 10, "retryAt": NOW - 5})
        assert problems(late, context) == [
            ("config.retryAt", "Retry date must be greater than execution date")
        ]

    @pytest.mark.parametrize(("field", "label"), [("retryAt", "Retry"), ("timeoutAt", "Timeout")])
    def test_retry_and_timeout_dates_come_a_second_after_the_first_attempt(
        self, field: str, label: str
    ) -> None:
        message = f"{label} date must be greater than execution date"
        # default delay: the first attempt is due at NOW + 1
        valid(config={field: NOW + 1_001})
        assert problems(body_of(config={field: NOW + 1_000})) == [(f"config.{field}", message)]
        # after a delay
        valid(config={"executionDelay": 5_000, field: NOW + 6_000})
        assert problems(body_of(config={"executionDelay": 5_000, field: NOW + 5_999})) == [
            (f"config.{field}", message)
        ]
        # after an absolute time
        valid(config={"executeAt": NOW + 10_000, field: NOW + 11_000})
        assert problems(body_of(config={"executeAt": NOW + 10_000, field: NOW + 10_999})) == [
            (f"config.{field}", message)
        ]

    @pytest.mark.parametrize(("field", "name"), [("retryAt", "retry"), ("timeoutAt", "timeout")])
    def test_invalid_retry_and_timeout_dates(self, field: str, name: str) -> None:
        assert problems(body_of(config={field: "soon"})) == [
            (f"config.{field}", f"Invalid {name} date")
        ]

    def test_time_zone_must_be_known(self) -> None:
        assert valid(config={"timeZone": "Asia/Jakarta"}).config.time_zone == "Asia/Jakarta"
        assert problems(body_of(config={"timeZone": "Mars/Olympus"})) == [
            ("config.timeZone", "Unknown time zone 'Mars/Olympus'")
        ]
        assert problems(body_of(config={"timeZone": 7})) == [
            ("config.timeZone", "Time zone must be an IANA name such as 'Asia/Jakarta'")
        ]


class TestTlsMaterial:
    @pytest.fixture
    def pem_file(self, tmp_path: Path) -> str:
        path = tmp_path / "material.pem"
        path.write_text("-----BEGIN CERTIFICATE-----\n")
        return str(path)

    def test_file_paths_and_base64_content_are_kept_as_given(self, pem_file: str) -> None:
        blob = PEM_BLOB
        config = valid(
            config={"ca": pem_file, "cert": {"value": blob, "password": "pw"}, "key": pem_file}
        ).config
        assert (config.ca, config.key) == (pem_file, pem_file)
        assert config.cert is not None
        assert (config.cert.value, config.cert.password) == (blob, "pw")
        assert valid(config={"ca": blob}).config.ca == blob

    @pytest.mark.parametrize(
        ("field", "path", "label"),
        [("ca", "config.ca", "CA"), ("key", "config.key", "Key")],
    )
    @pytest.mark.parametrize(
        "value", ["/no/such/file.pem", "not*base64*content!", "QUJD", "QUJDRA=="]
    )
    def test_a_missing_file_that_is_not_base64_either(
        self, field: str, path: str, label: str, value: str
    ) -> None:
        assert problems(body_of(config={field: value})) == [(path, f"{label} file does not exist")]

    @pytest.mark.parametrize(("field", "label"), [("ca", "CA"), ("key", "Key")])
    def test_base64_must_hold_pem_or_der(self, field: str, label: str) -> None:
        not_a_certificate = base64.b64encode(b"hello, this is no certificate").decode()
        assert problems(body_of(config={field: not_a_certificate})) == [
            (f"config.{field}", f"{label} content must be base64 of PEM or DER")
        ]
        der = base64.b64encode(b"\x30\x82\x01\x0a" + b"\x00" * 12).decode()
        assert getattr(valid(config={field: der}).config, field) == der

    def test_a_missing_certificate_file(self) -> None:
        assert problems(body_of(config={"cert": {"value": "/no/such/cert.pem"}})) == [
            ("config.cert.value", "Certificate file does not exist")
        ]

    @pytest.mark.parametrize("value", ["", 5])
    def test_an_empty_or_non_string_value(self, value: Any) -> None:
        assert problems(body_of(config={"ca": value})) == [
            ("config.ca", "CA must be a file path or base64 content")
        ]

    def test_cert_password_has_1_to_1024_characters(self) -> None:
        blob = PEM_BLOB
        valid(config={"cert": {"value": blob, "password": "p" * 1024}})
        assert_refused(
            body_of(config={"cert": {"value": blob, "password": ""}}),
            "config.cert.password",
            "at least 1 character",
        )
        assert_refused(
            body_of(config={"cert": {"value": blob, "password": "p" * 1025}}),
            "config.cert.password",
            "at most 1024",
        )
        assert_refused(body_of(config={"cert": {}}), "config.cert.value", "Field required")


class TestMetadata:
    def test_one_to_eight_strings(self) -> None:
        one = {"tag": "x" * 512}
        eight = {f"k{i}": "v" for i in range(8)}
        assert valid(metadata=one).metadata == one
        assert valid(metadata=eight).metadata == eight
        assert valid(metadata=None).metadata is None

    @pytest.mark.parametrize(
        ("metadata", "message"),
        [
            ({}, "Metadata must be an object of 1 to 8 keys"),
            ({f"k{i}": "v" for i in range(9)}, "Metadata must be an object of 1 to 8 keys"),
            ("tag", "Metadata must be an object of 1 to 8 keys"),
            ({"k": ""}, "Value of 'k' must be a string of 1 to 512 characters"),
            ({"k": "v" * 513}, "Value of 'k' must be a string of 1 to 512 characters"),
            ({"k": 1}, "Value of 'k' must be a string of 1 to 512 characters"),
            ({"bad key": "v"}, "Invalid key format: 'bad key'"),
        ],
    )
    def test_refused(self, metadata: Any, message: str) -> None:
        assert problems(body_of(metadata=metadata)) == [("metadata", message)]
