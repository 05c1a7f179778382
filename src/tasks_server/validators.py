"""Field rules shared by the task body and its delivery options."""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel

KEY_PATTERN = r"^[a-zA-Z0-9$_.\-\[\]]{1,64}$"
KEY_RE = re.compile(KEY_PATTERN)
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)([a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$"
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, alias_generator=to_camel, frozen=True)


def record(value: Any, *, max_value: int) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("Expected an object of strings")
    for key, item in value.items():
        if not KEY_RE.match(key):
            raise ValueError(f"Invalid key format: {key!r}")
        if not isinstance(item, str) or not 1 <= len(item) <= max_value:
            raise ValueError(f"Value of {key!r} must be a string of 1 to {max_value} characters")
        if CONTROL_RE.search(item):
            raise ValueError(f"Value of {key!r} must not contain control characters")
    return value


RecordString = Annotated[
    dict[str, str],
    BeforeValidator(lambda v: record(v, max_value=1024)),
    Field(json_schema_extra={"propertyNames": {"pattern": KEY_PATTERN}}),
]


def url(value: Any) -> str:
    if not isinstance(value, str) or len(value) > 1024:
        raise ValueError("URL must be a string of at most 1024 characters")
    match = re.match(r"^(https?)://([^/?#\s]+)[^\s]*$", value, re.IGNORECASE)
    if match is None or match.group(2).startswith(("@", ":")) or CONTROL_RE.search(value):
        raise ValueError("URL must start with either http or https and name a host")
    try:
        urlsplit(value).port  # noqa: B018 - parses the host and port
    except ValueError as exc:
        raise ValueError(f"Invalid URL: {exc}") from None
    return value if value.isascii() else quote(value, safe=_URL_SAFE)


HttpUrl = Annotated[str, BeforeValidator(url)]


def ip_address(value: Any) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None


IpAddress = Annotated[str, BeforeValidator(ip_address)]


def hostname(value: Any) -> str:
    if isinstance(value, str) and HOSTNAME_RE.match(value):
        return value
    raise ValueError(f"{value!r} is not a host name")


def lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def upper(value: Any) -> Any:
    return value.upper() if isinstance(value, str) else value
