"""The delivery options of the seed ("HTTP requests with selected curl options"): auth, cookies,
redirects, DNS, TLS, proxies. Each maps onto one or a few libcurl options (``delivery.py``).

An option the linked libcurl cannot honour is refused at registration (``refusals``), with the
reason the transport gives (``{"authNtlm": "why", "httpVersion=3": "why"}``).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Discriminator, Field, Tag, ValidationInfo, model_validator
from pydantic.alias_generators import to_camel

from .validators import (
    HttpUrl,
    IpAddress,
    RecordString,
    Strict,
    hostname,
    lower,
    upper,
    url,
)

FORBIDDEN_PROXY_PORTS = (20, 21, 22, 23, 25, 53)
FETCH_ONLY = "is an option of the browser fetch API; libcurl has no equivalent"


class Credentials(Strict):
    username: Annotated[str, Field(min_length=1, max_length=64)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class AwsSigv4(Strict):
    provider1: Annotated[str, Field(min_length=3)]
    provider2: Annotated[str, Field(min_length=3)]
    region: Annotated[str, Field(min_length=1, max_length=128)]
    service: Annotated[str, Field(min_length=1, max_length=128)]
    key: Annotated[str, Field(min_length=1, max_length=256)]
    secret: Annotated[str, Field(min_length=1, max_length=256)]


class Cookie(Strict):
    name: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^\s;=]+$")]
    value: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[^\s;]+$")]


def _base64_text(value: Any, field: str, what: str) -> str:
    try:
        base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError, TypeError):
        raise ValueError(f"{field} must be base64 of {what}") from None
    return str(value)


def _cookie_jar(value: Any) -> Any:
    return _base64_text(value, "Cookie", "a cookie-jar file")


def _cookie_kind(value: Any) -> str | None:
    if isinstance(value, str):
        return "jar"
    return "pairs" if isinstance(value, list) else None


CookieValue = Annotated[
    Annotated[str, BeforeValidator(_cookie_jar), Tag("jar")]
    | Annotated[list[Cookie], Field(min_length=1, max_length=16), Tag("pairs")],
    Discriminator(
        _cookie_kind,
        custom_error_type="cookie_type",
        custom_error_message="Cookie must be an array of {name, value} or base64 of a cookie jar",
    ),
]


def _hsts(value: Any) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _base64_text(value, "hsts", "an HSTS file")
    raise ValueError("hsts must be true, false, or base64 of an HSTS file")


def _proxy_port(value: Any) -> Any:
    if value in FORBIDDEN_PROXY_PORTS:
        raise ValueError("Invalid proxy port")
    return value


Port = Annotated[int, Field(ge=1, le=65535)]


class Proxy(Strict):
    protocol: Annotated[Literal["http", "https"], BeforeValidator(lower)]
    host: Annotated[str, Field(max_length=128), BeforeValidator(hostname)]
    port: Annotated[Port, BeforeValidator(_proxy_port)] | None = None


def _resolve_host(value: Any) -> str:
    return "*" if value == "*" else hostname(value)


def _not_ssh(value: Any) -> Any:
    if value == 22:
        raise ValueError("Port 22 is not allowed")
    return value


class Resolve(Strict):
    host: Annotated[str, BeforeValidator(_resolve_host)]
    port: Annotated[Port, BeforeValidator(_not_ssh)]
    address: Annotated[list[IpAddress], Field(min_length=1, max_length=4)]


def _auto_or_url(value: Any) -> str:
    if isinstance(value, str) and value.upper() == "AUTO":
        return "AUTO"
    return url(value)


TlsVersion = Literal["1.0", "1.1", "1.2", "1.3"]
Protocol = Annotated[Literal["http", "https"], BeforeValidator(lower)]


class RequestOptions(Strict):
    cookie: CookieValue | None = None
    auth_basic: Credentials | None = None
    auth_digest: Credentials | None = None
    auth_ntlm: Credentials | None = None
    auth_aws_sigv4: AwsSigv4 | None = None


def _fetch_only(value: Any, info: ValidationInfo) -> Any:
    raise ValueError(f"{to_camel(info.field_name or '')} {FETCH_ONLY}")


FetchOnly = Annotated[Any, BeforeValidator(_fetch_only)]


class ConnectionOptions(Strict):
    http_version: Literal["0.9", "1.0", "1.1", "2", "2-prior-knowledge", "3"] = "1.1"
    ip_version: Literal[4, 6] | None = None
    referer_url: Annotated[str, BeforeValidator(_auto_or_url)] = "AUTO"
    keep_alive_duration: Annotated[int, Field(ge=0, le=259_200)] = 30
    hsts: Annotated[bool | str, BeforeValidator(_hsts)] | None = None
    session_id: bool = True
    insecure: bool = False
    location: bool = True
    location_trusted: Credentials | None = None
    redirect_attempts: Annotated[int, Field(ge=0, le=32)] = 8
    proto: Protocol | None = None
    proto_redirect: Protocol | None = None
    dns_server: Annotated[list[IpAddress], Field(min_length=1, max_length=4)] | None = None
    resolve: Annotated[list[Resolve], Field(min_length=1, max_length=4)] | None = None
    doh_url: HttpUrl | None = None
    doh_insecure: bool | None = None
    tls_version: TlsVersion | None = None
    tls_max_version: TlsVersion | None = None
    proxy: Proxy | None = None
    proxy_headers: RecordString | None = None
    proxy_insecure: bool | None = None
    proxy_http_version: Literal["1.0", "1.1"] = "1.1"
    proxy_auth_basic: Credentials | None = None
    proxy_auth_digest: Credentials | None = None
    proxy_auth_ntlm: Credentials | None = None
    ha_proxy_client_ip: IpAddress | None = None
    ha_proxy_protocol: bool | None = None
    cert_type: Annotated[Literal["DER", "ENG", "P12", "PEM"], BeforeValidator(upper)] | None = None
    key_type: Annotated[Literal["DER", "ENG", "PEM"], BeforeValidator(upper)] | None = None
    cert_status: bool | None = None
    credentials: FetchOnly | None = None
    referrer_policy: FetchOnly | None = None
    mode: FetchOnly | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ConnectionOptions:
        proxy_auths = [self.proxy_auth_basic, self.proxy_auth_digest, self.proxy_auth_ntlm]
        if sum(auth is not None for auth in proxy_auths) > 1:
            raise ValueError("Choose one of proxyAuthBasic, proxyAuthDigest and proxyAuthNtlm")
        defaults = type(self).model_fields
        needing_proxy = [
            name for name in PROXY_SETTINGS if getattr(self, name) != defaults[name].default
        ]
        if self.proxy is None and needing_proxy:
            names = ", ".join(to_camel(name) for name in needing_proxy)
            raise ValueError(f"{names} only apply with proxy")
        if self.tls_version and self.tls_max_version and self.tls_version > self.tls_max_version:
            raise ValueError("tlsVersion must not be above tlsMaxVersion")
        return self


PROXY_SETTINGS = (
    "proxy_headers",
    "proxy_insecure",
    "proxy_http_version",
    "proxy_auth_basic",
    "proxy_auth_digest",
    "proxy_auth_ntlm",
)


def refusals(
    request: RequestOptions, config: ConnectionOptions, unsupported: Mapping[str, str]
) -> dict[str, Any] | None:
    """The options set that the transport cannot honour, as an error tree, or None."""
    tree: dict[str, Any] = {}
    for section, options in (("httpRequest", request), ("config", config)):
        for name in options.model_fields_set:
            alias, value = to_camel(name), getattr(options, name)
            reason = unsupported.get(f"{alias}={value}")
            if value is not None and value is not False:
                reason = reason or unsupported.get(alias)
            if reason is not None:
                node = tree.setdefault(section, {"_errors": []})
                node[alias] = {"_errors": [reason]}
    return {"_errors": [], **tree} if tree else None
