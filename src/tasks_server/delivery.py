"""How a task is delivered: its spec compiled once, at registration, into an HTTP request and a
retry policy, stored beside the task so the dispatcher never re-reads the user's body."""

from __future__ import annotations

import base64
import dataclasses
import ipaddress
import os
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson

from .dispatch.transport.base import DEFAULT_OPTIONS, Auth, Material, Options, Proxy, Request, Tls
from .options import Credentials
from .retry import Backoff, RetryPolicy
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
    body = _body(http, headers)
    return Request(
        url=_url(http),
        method=http.method,
        headers=tuple(headers),
        body=body,
        user_agent=config.user_agent,
        timeout_ms=config.timeout,
        tls=_tls(config),
        keep_body=config.trace_response_data,
        options=_options(http, config),
    )


def _url(http: HttpRequest) -> str:
    if not http.query:
        return http.url
    separator = "&" if "?" in http.url else "?"
    return http.url + separator + urlencode(http.query)


def _body(http: HttpRequest, headers: list[str]) -> bytes | None:
    data = http.data
    if data is None or http.method in _NO_BODY_METHODS:
        return None
    has_type = any(h.lower().startswith("content-type:") for h in headers)
    if isinstance(data, list):
        # The boundary is ours, so a user's Content-Type cannot stand.
        boundary = "tasks-" + secrets.token_hex(12)
        headers[:] = [h for h in headers if not h.lower().startswith("content-type:")]
        headers.append(f"Content-Type: multipart/form-data; boundary={boundary}")
        return _multipart(boundary, [(item.name, item.value) for item in data])
    if isinstance(data, str):
        content_type, body = "text/plain; charset=utf-8", data.encode()
    else:
        content_type, body = "application/json", orjson.dumps(data)
    if not has_type:
        headers.append(f"Content-Type: {content_type}")
    return body


def _multipart(boundary: str, fields: list[tuple[str, str]]) -> bytes:
    """A ``multipart/form-data`` body, built here so that it can be signed."""
    parts = []
    for name, value in fields:
        quoted = name.replace('"', "%22").replace("\r", "%0D").replace("\n", "%0A")
        disposition = f'Content-Disposition: form-data; name="{quoted}"'
        parts.append(f"--{boundary}\r\n{disposition}\r\n\r\n{value}\r\n")
    parts.append(f"--{boundary}--\r\n")
    return "".join(parts).encode()


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


def _credentials(scheme: str, credentials: Credentials | None) -> Auth | None:
    if credentials is None:
        return None
    return Auth(scheme, credentials.username, credentials.password)  # type: ignore[arg-type]


def _auth(http: HttpRequest) -> Auth | None:
    if http.auth_aws_sigv4 is not None:
        aws = http.auth_aws_sigv4
        provider = f"{aws.provider1}:{aws.provider2}:{aws.region}:{aws.service}"
        return Auth("aws-sigv4", aws.key, aws.secret, aws_sigv4=provider)
    return (
        _credentials("basic", http.auth_basic)
        or _credentials("digest", http.auth_digest)
        or _credentials("ntlm", http.auth_ntlm)
    )


def _cookies(http: HttpRequest) -> dict[str, Any]:
    if isinstance(http.cookie, list):
        return {"cookies": "; ".join(f"{c.name}={c.value}" for c in http.cookie)}
    if isinstance(http.cookie, str):
        lines = base64.b64decode(http.cookie).decode().splitlines()
        jar = [line for line in lines if line.strip() and not _is_comment(line)]
        return {"cookie_jar": tuple(jar)}
    return {}


def _is_comment(line: str) -> bool:
    return line.startswith("#") and not line.startswith("#HttpOnly_")


def _address(value: str) -> str:
    return f"[{value}]" if ipaddress.ip_address(value).version == 6 else value


def _proxy(config: Config) -> Proxy | None:
    proxy = config.proxy
    if proxy is None:
        return None
    port = f":{proxy.port}" if proxy.port else ""
    auth = (
        _credentials("basic", config.proxy_auth_basic)
        or _credentials("digest", config.proxy_auth_digest)
        or _credentials("ntlm", config.proxy_auth_ntlm)
    )
    headers = tuple(f"{k}: {v}" for k, v in (config.proxy_headers or {}).items())
    return Proxy(
        url=f"{proxy.protocol}://{proxy.host}{port}",
        http10=config.proxy_http_version == "1.0",
        headers=headers,
        insecure=bool(config.proxy_insecure),
        auth=auth,
    )


def _options(http: HttpRequest, config: Config) -> Options:
    auto_referer = config.referer_url == "AUTO"
    resolve = tuple(
        f"{entry.host}:{entry.port}:{','.join(_address(a) for a in entry.address)}"
        for entry in config.resolve or ()
    )
    options = Options(
        auth=_auth(http),
        **_cookies(http),
        http_version=config.http_version,
        ip_version=config.ip_version,
        referer=None if auto_referer else config.referer_url,
        auto_referer=auto_referer,
        keepalive_s=config.keep_alive_duration,
        hsts=base64.b64decode(config.hsts) if isinstance(config.hsts, str) else config.hsts,
        session_id_cache=config.session_id,
        insecure=config.insecure,
        follow_redirects=config.location,
        max_redirects=config.redirect_attempts,
        trusted_redirect_auth=_credentials("basic", config.location_trusted),
        protocols=(config.proto,) if config.proto else ("http", "https"),
        redirect_protocols=(config.proto_redirect,) if config.proto_redirect else ("http", "https"),
        dns_servers=tuple(config.dns_server or ()),
        resolve=resolve,
        doh_url=config.doh_url,
        doh_insecure=bool(config.doh_insecure),
        tls_min=config.tls_version,
        tls_max=config.tls_max_version,
        proxy=_proxy(config),
        haproxy_protocol=bool(config.ha_proxy_protocol),
        haproxy_client_ip=config.ha_proxy_client_ip,
        cert_type=config.cert_type,
        key_type=config.key_type,
        cert_status=bool(config.cert_status),
    )
    return DEFAULT_OPTIONS if options == DEFAULT_OPTIONS else options


def _retry_policy(config: Config) -> RetryPolicy:
    ignore = frozenset(config.ignore_status_code)
    knobs = config.retry_policy
    if knobs is not None:
        backoff = Backoff(
            min_ms=knobs.min_backoff,
            max_ms=knobs.max_backoff,
            max_doublings=knobs.max_doublings,
            jitter=knobs.jitter == "full",
        )
        return RetryPolicy(
            limit=knobs.max_attempts - 1,
            ignore_status_codes=ignore,
            backoff=backoff,
            max_duration_ms=knobs.max_retry_duration,
        )
    return _seed_retry_policy(config, ignore)


def _seed_retry_policy(config: Config, ignore: frozenset[int]) -> RetryPolicy:
    if config.retry_at is not None:
        return RetryPolicy(
            limit=1, interval_ms=0, at_ms=config.retry_at, ignore_status_codes=ignore
        )
    return RetryPolicy(
        limit=config.retry,
        interval_ms=config.retry_interval,
        linear=config.retry_exponential,
        ignore_status_codes=ignore,
    )


def dump_delivery(delivery: Delivery) -> bytes:
    request, retry = delivery.request, delivery.retry
    return orjson.dumps(
        {
            "url": request.url,
            "method": request.method,
            "headers": request.headers,
            "body": request.body.decode() if request.body is not None else None,
            "userAgent": request.user_agent,
            "timeoutMs": request.timeout_ms,
            "tls": _dump_tls(request.tls),
            "keepBody": request.keep_body,
            "options": _dump_options(request.options),
            "timeoutAtMs": delivery.timeout_at_ms,
            "retry": {
                "limit": retry.limit,
                "intervalMs": retry.interval_ms,
                "linear": retry.linear,
                "atMs": retry.at_ms,
                "ignore": sorted(retry.ignore_status_codes),
                "backoff": dataclasses.asdict(retry.backoff) if retry.backoff else None,
                "maxDurationMs": retry.max_duration_ms,
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
            user_agent=data["userAgent"],
            timeout_ms=data["timeoutMs"],
            tls=_load_tls(data["tls"]),
            keep_body=data["keepBody"],
            options=_load_options(data.get("options")),
        ),
        retry=RetryPolicy(
            limit=retry["limit"],
            interval_ms=retry["intervalMs"],
            linear=retry["linear"],
            at_ms=retry["atMs"],
            ignore_status_codes=frozenset(retry["ignore"]),
            backoff=Backoff(**retry["backoff"]) if retry.get("backoff") else None,
            max_duration_ms=retry.get("maxDurationMs", 0),
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


def _dump_options(options: Options) -> dict[str, Any] | None:
    if options == DEFAULT_OPTIONS:
        return None
    data = dataclasses.asdict(options)
    if isinstance(options.hsts, bytes):
        data["hsts"] = {"blob": base64.b64encode(options.hsts).decode()}
    return data


def _load_auth(data: dict[str, Any] | None) -> Auth | None:
    return Auth(**data) if data else None


def _load_options(data: dict[str, Any] | None) -> Options:
    if data is None:
        return DEFAULT_OPTIONS
    proxy = data.pop("proxy")
    if proxy is not None:
        proxy = Proxy(
            **{**proxy, "headers": tuple(proxy["headers"]), "auth": _load_auth(proxy["auth"])}
        )
    hsts = data.pop("hsts")
    if isinstance(hsts, dict):
        hsts = base64.b64decode(hsts["blob"])
    auth = _load_auth(data.pop("auth"))
    trusted = _load_auth(data.pop("trusted_redirect_auth"))
    tuples = ("cookie_jar", "protocols", "redirect_protocols", "dns_servers", "resolve")
    fields: dict[str, Any] = {k: tuple(v) if k in tuples else v for k, v in data.items()}
    return Options(
        **fields,
        auth=auth,
        trusted_redirect_auth=trusted,
        proxy=proxy,
        hsts=hsts,
    )
