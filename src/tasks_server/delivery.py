"""How a task is delivered: its spec compiled once, at registration, into an HTTP request and a
retry policy, stored beside the task so the dispatcher never re-reads the user's body."""

from __future__ import annotations

import base64
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from .dispatch.transport.base import Material, Request, Tls
from .retry import RetryPolicy
from .spec import Config, HttpRequest, TaskSpec, decode_material

_NO_BODY_METHODS = ("GET", "DELETE")


@dataclass(frozen=True, slots=True)
class Delivery:
    request: Request
    retry: RetryPolicy
    timeout_at_ms: int | None = None
    """The deadline of the first attempt (``timeoutAt``)."""

    def timeout_ms(self, now_ms: int, first_attempt: bool) -> int:
        if first_attempt and self.timeout_at_ms is not None:
            return max(1, self.timeout_at_ms - now_ms)
        return self.request.timeout_ms


def compile_delivery(spec: TaskSpec) -> Delivery:
    config = spec.config
    return Delivery(
        request=_request(spec.http_request, config),
        retry=_retry_policy(config),
        timeout_at_ms=config.timeout_at,
    )


def _request(http: HttpRequest, config: Config) -> Request:
    headers = [f"{name}: {value}" for name, value in (http.headers or {}).items()]
    body, form = _body(http, headers)
    return Request(
        url=_url(http),
        method=http.method,
        headers=tuple(headers),
        body=body,
        form=form,
        user_agent=config.user_agent,
        timeout_ms=config.timeout,
        tls=_tls(config),
        keep_body=config.trace_response_data,
    )


def _url(http: HttpRequest) -> str:
    if not http.query:
        return http.url
    separator = "&" if "?" in http.url else "?"
    return http.url + separator + urlencode(http.query)


def _body(
    http: HttpRequest, headers: list[str]
) -> tuple[bytes | None, tuple[tuple[str, str], ...] | None]:
    data = http.data
    if data is None or http.method in _NO_BODY_METHODS:
        return None, None
    if isinstance(data, list):
        return None, tuple((item.name, item.value) for item in data)
    has_type = any(h.lower().startswith("content-type:") for h in headers)
    if isinstance(data, str):
        content_type, body = "text/plain; charset=utf-8", data.encode()
    else:
        content_type, body = "application/json", orjson.dumps(data)
    if not has_type:
        headers.append(f"Content-Type: {content_type}")
    return body, None


def _material(value: str | None) -> Material | None:
    if value is None:
        return None
    if len(value) <= 256 and os.path.isfile(value):
        return Material(path=value)
    return Material(blob=decode_material(value))


def _tls(config: Config) -> Tls | None:
    if config.ca is None and config.cert is None and config.key is None:
        return None
    return Tls(
        ca=_material(config.ca),
        cert=_material(config.cert.value if config.cert else None),
        cert_password=config.cert.password if config.cert else None,
        key=_material(config.key),
    )


def _retry_policy(config: Config) -> RetryPolicy:
    if config.retry_at is not None:
        return RetryPolicy(
            limit=1,
            interval_ms=0,
            at_ms=config.retry_at,
            ignore_status_codes=frozenset(config.ignore_status_code),
        )
    return RetryPolicy(
        limit=config.retry,
        interval_ms=config.retry_interval,
        linear=config.retry_exponential,
        ignore_status_codes=frozenset(config.ignore_status_code),
    )


def dump_delivery(delivery: Delivery) -> bytes:
    request, retry = delivery.request, delivery.retry
    return orjson.dumps(
        {
            "url": request.url,
            "method": request.method,
            "headers": request.headers,
            "body": request.body.decode() if request.body is not None else None,
            "form": request.form,
            "userAgent": request.user_agent,
            "timeoutMs": request.timeout_ms,
            "tls": _dump_tls(request.tls),
            "keepBody": request.keep_body,
            "timeoutAtMs": delivery.timeout_at_ms,
            "retry": {
                "limit": retry.limit,
                "intervalMs": retry.interval_ms,
                "linear": retry.linear,
                "atMs": retry.at_ms,
                "ignore": sorted(retry.ignore_status_codes),
            },
        }
    )


def load_delivery(raw: str | bytes) -> Delivery:
    data = orjson.loads(raw)
    retry = data["retry"]
    return Delivery(
        request=Request(
            url=data["url"],
            method=data["method"],
            headers=tuple(data["headers"]),
            body=data["body"].encode() if data["body"] is not None else None,
            form=tuple((n, v) for n, v in data["form"]) if data["form"] else None,
            user_agent=data["userAgent"],
            timeout_ms=data["timeoutMs"],
            tls=_load_tls(data["tls"]),
            keep_body=data["keepBody"],
        ),
        retry=RetryPolicy(
            limit=retry["limit"],
            interval_ms=retry["intervalMs"],
            linear=retry["linear"],
            at_ms=retry["atMs"],
            ignore_status_codes=frozenset(retry["ignore"]),
        ),
        timeout_at_ms=data["timeoutAtMs"],
    )


def _dump_material(material: Material | None) -> dict[str, str] | None:
    if material is None:
        return None
    if material.path is not None:
        return {"path": material.path}
    return {"blob": base64.b64encode(material.blob or b"").decode()}


def _load_material(data: dict[str, str] | None) -> Material | None:
    if data is None:
        return None
    if "path" in data:
        return Material(path=data["path"])
    return Material(blob=base64.b64decode(data["blob"]))


def _dump_tls(tls: Tls | None) -> dict[str, Any] | None:
    if tls is None:
        return None
    return {
        "ca": _dump_material(tls.ca),
        "cert": _dump_material(tls.cert),
        "certPassword": tls.cert_password,
        "key": _dump_material(tls.key),
    }


def _load_tls(data: dict[str, Any] | None) -> Tls | None:
    if data is None:
        return None
    return Tls(
        ca=_load_material(data["ca"]),
        cert=_load_material(data["cert"]),
        cert_password=data["certPassword"],
        key=_load_material(data["key"]),
    )
