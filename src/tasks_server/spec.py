"""What a user asks for: the registration body of a task, validated field by field.

Dates are turned into epoch milliseconds here, with the checks that need the time ("later than
now") reading it from the validation context: ``{"now_ms": ..., "future": True}``. Without a
context those checks are skipped; ``{"stored": True}`` (a stored spec read back) also skips the
checks that certificate files still exist.
"""

from __future__ import annotations

import base64
import binascii
import math
import os
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .options import ConnectionOptions, RequestOptions
from .scheduling import MAX_SAFE_INTEGER, first_due_at, parse_date
from .validators import KEY_RE, HttpUrl, RecordString, Strict, record

RESERVED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "idempotency-key")
DEFAULT_USER_AGENT = "Tasks-Server/1.0 (compatible; Linux x86_64; +http://tasks-server)"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MAX_DATA_DEPTH = 3

_DATE_NAMES = {"execute_at": "execute", "retry_at": "retry", "timeout_at": "timeout"}
_DATE_SCHEMA = {
    "anyOf": [{"type": "integer", "minimum": 0}, {"type": "string"}],
    "description": "Epoch ms, ISO 8601, or a date such as 'Dec 12 2030 12:12:12 AM +07:00'",
}


def _method(value: Any) -> str:
    if isinstance(value, str) and value.upper() in METHODS:
        return value.upper()
    raise ValueError(f"Method must be one of {', '.join(METHODS)}")


def _json_depth(value: Any, depth: int = 1) -> int:
    if isinstance(value, dict):
        return max((_json_depth(v, depth + 1) for v in value.values()), default=depth)
    return depth - 1


def _data_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "form"
    return "json" if isinstance(value, dict) else None


def _json_data(value: Any) -> Any:
    if isinstance(value, dict):
        _check_json_object(value)
    return value


def _check_json_object(value: dict[str, Any]) -> None:
    if _json_depth(value) > MAX_DATA_DEPTH:
        raise ValueError(f"Object data may nest at most {MAX_DATA_DEPTH} levels")
    for key, item in value.items():
        if not KEY_RE.match(key):
            raise ValueError(f"Invalid key format: {key!r}")
        if isinstance(item, str) and len(item) > 4096:
            raise ValueError(f"Value of {key!r} must have at most 4096 characters")
        if isinstance(item, dict):
            _check_json_object(item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"Value of {key!r} must be a finite number")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise ValueError(f"Value of {key!r} must be a string, number, boolean, null or object")


class FormField(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    value: Annotated[str, Field(min_length=1, max_length=4096)]


JsonObject = dict[str, Any]
Data = Annotated[
    Annotated[str, Field(min_length=1, max_length=4096), Tag("text")]
    | Annotated[list[FormField], Field(min_length=1, max_length=64), Tag("form")]
    | Annotated[JsonObject, BeforeValidator(_json_data), Tag("json")],
    Discriminator(
        _data_kind,
        custom_error_type="data_type",
        custom_error_message="Data must be a string, an array of {name, value} pairs, or an object",
    ),
]


class HttpRequest(RequestOptions):
    url: HttpUrl
    method: Annotated[Literal["GET", "POST", "PUT", "PATCH", "DELETE"], BeforeValidator(_method)]
    query: RecordString | None = None
    headers: RecordString | None = None
    data: Data | None = None
    transport: Literal["fetch", "curl"] | None = None

    @model_validator(mode="after")
    def _one_auth_scheme(self) -> HttpRequest:
        schemes = [self.auth_basic, self.auth_digest, self.auth_ntlm, self.auth_aws_sigv4]
        if sum(scheme is not None for scheme in schemes) > 1:
            raise ValueError("Choose one of authBasic, authDigest, authNtlm and authAwsSigv4")
        return self

    @field_validator("headers")
    @classmethod
    def _drop_user_agent(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        for name in value:
            if name.lower() in RESERVED_HEADERS or name.lower().startswith("x-tasks-"):
                raise ValueError(f"Header {name!r} is set by the server")
        return {k: v for k, v in value.items() if "user-agent" not in k.lower()}


def _material(value: Any, info: ValidationInfo) -> str:
    """A path to a file on the server, or base64 content."""
    label = {"ca": "CA", "key": "Key"}.get(info.field_name or "", "Certificate")
    if not isinstance(value, str) or not value:
        raise ValueError(f"{label} must be a file path or base64 content")
    if (info.context or {}).get("stored") or (len(value) <= 256 and os.path.isfile(value)):
        return value
    content = decode_material(value)
    if content is None:
        raise ValueError(f"{label} file does not exist")
    if not content.startswith((b"-----BEGIN", b"\x30")):
        raise ValueError(f"{label} content must be base64 of PEM or DER")
    return value


def decode_material(value: str) -> bytes | None:
    """The content of a base64 value, or None when ``value`` is not base64."""
    if len(value) < 16 or len(value) % 4:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


Material = Annotated[str, BeforeValidator(_material)]


class Certificate(Strict):
    value: Material
    password: Annotated[str, Field(min_length=1, max_length=1024)] | None = None


def _zone(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Time zone must be an IANA name such as 'Asia/Jakarta'")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"Unknown time zone {value!r}") from exc
    return value


def _date(value: Any, info: ValidationInfo) -> int:
    name = _DATE_NAMES[info.field_name or ""]
    if not isinstance(value, int | str) or isinstance(value, bool):
        raise ValueError(f"Invalid {name} date")
    try:
        moment = parse_date(value, ZoneInfo(info.data.get("time_zone") or "UTC"))
    except ValueError:
        raise ValueError(f"Invalid {name} date") from None
    context = info.context or {}
    dates = context.get("dates")
    if context.get("future") and (dates is None or to_camel(info.field_name or "") in dates):
        _check_order(name, moment, context["now_ms"], info.data)
    return moment


def _check_order(name: str, moment: int, now_ms: int, data: dict[str, Any]) -> None:
    if name == "execute":
        if moment <= now_ms:
            raise ValueError("Execution date must be greater than today")
        return
    first = first_due_at(now_ms, data.get("execution_delay", 1), data.get("execute_at"))
    if moment < first + 1000:
        label = "Retry" if name == "retry" else "Timeout"
        raise ValueError(f"{label} date must be greater than execution date")


DateMs = Annotated[int, BeforeValidator(_date), Field(json_schema_extra=_DATE_SCHEMA)]
Milliseconds = Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)]


class Config(ConnectionOptions):
    time_zone: Annotated[str, BeforeValidator(_zone)] = "UTC"
    execution_delay: Milliseconds = 1
    execute_at: DateMs | None = None
    execute_immediately: bool = False
    retry: Annotated[int, Field(ge=0, le=MAX_SAFE_INTEGER)] = 0
    retry_at: DateMs | None = None
    retry_interval: Annotated[int, Field(ge=1, le=MAX_SAFE_INTEGER)] = 1
    retry_exponential: bool = False
    ignore_status_code: Annotated[
        list[Annotated[int, Field(ge=400, le=599)]], Field(max_length=40)
    ] = Field(default_factory=list)
    timeout: Annotated[int, Field(ge=1000, le=MAX_SAFE_INTEGER)] = 30_000
    timeout_at: DateMs | None = None
    user_agent: Annotated[str, Field(min_length=8, max_length=256)] = DEFAULT_USER_AGENT
    trace_response_data: bool = True
    ca: Material | None = None
    cert: Certificate | None = None
    key: Material | None = None
    retry_policy: RetryPolicyConfig | None = None

    @model_validator(mode="after")
    def _one_retry_policy(self) -> Config:
        if self.retry_policy is not None and self.model_fields_set.intersection(SEED_RETRY_FIELDS):
            raise ValueError(
                "Use either retryPolicy or retry, retryAt, retryInterval and retryExponential"
            )
        return self


class RetryPolicyConfig(Strict):
    """Cloud Tasks' retry knobs; see docs/api.md, "Retry policies"."""

    max_attempts: Annotated[int, Field(ge=1, le=1000)]
    min_backoff: Milliseconds = 1000
    max_backoff: Milliseconds = 3_600_000
    max_doublings: Annotated[int, Field(ge=0, le=30)] = 16
    max_retry_duration: Milliseconds = 0
    jitter: Literal["full", "none"] = "full"

    @model_validator(mode="after")
    def _bounds(self) -> RetryPolicyConfig:
        if self.max_backoff < self.min_backoff:
            raise ValueError("maxBackoff must not be less than minBackoff")
        return self


SEED_RETRY_FIELDS = ("retry", "retry_at", "retry_interval", "retry_exponential")


def _metadata(value: Any) -> Any:
    if not isinstance(value, dict) or not 1 <= len(value) <= 8:
        raise ValueError("Metadata must be an object of 1 to 8 keys")
    return record(value, max_value=512)


class TaskSpec(Strict):
    """The registration body of a task."""

    http_request: HttpRequest
    config: Config = Field(default_factory=Config)
    metadata: Annotated[dict[str, str], BeforeValidator(_metadata)] | None = None

    @model_validator(mode="after")
    def _one_set_of_credentials(self) -> TaskSpec:
        request = self.http_request
        schemes = [
            request.auth_basic,
            request.auth_digest,
            request.auth_ntlm,
            request.auth_aws_sigv4,
        ]
        if self.config.location_trusted is not None and any(schemes):
            raise ValueError("locationTrusted carries its own credentials: drop the auth* field")
        return self
