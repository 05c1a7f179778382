"""libcurl's multi interface driven by the asyncio event loop.

libcurl tells us which sockets to watch (``M_SOCKETFUNCTION``) and when to wake it
(``M_TIMERFUNCTION``); the loop calls ``socket_action`` back when a socket is ready. All the
HTTP work happens in C; Python runs once per readiness event and once per finished transfer.
Easy handles are reused and share the multi handle's connection cache (keep-alive).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import certifi
import pycurl

from .base import DEFAULT_OPTIONS, Auth, Done, Material, Options, Request, Response, Tls

_FREE_HANDLES = 256
_PROTOCOLS = pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS
# The libcurl inside pycurl's wheels looks for Red Hat's bundle only.
_SYSTEM_CA_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
)


def default_ca_bundle() -> str:
    """The system's CA bundle, or certifi's where the system has none."""
    return next((path for path in _SYSTEM_CA_BUNDLES if os.path.isfile(path)), certifi.where())


_KEPT_HEADERS = (b"retry-after:", b"tasks-retry:")


@dataclass(slots=True)
class _Transfer:
    request: Request
    done: Done
    started_at_ms: int
    limit: int
    isolated: bool = False
    size: int = 0
    chunks: list[bytes] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def write(self, chunk: bytes) -> None:
        if self.size < self.limit:
            self.chunks.append(chunk[: self.limit - self.size])
        self.size += len(chunk)

    def header(self, line: bytes) -> None:
        """Keeps the headers retries listen to, from the last answer (after redirects)."""
        if line.startswith(b"HTTP/"):
            self.headers.clear()
            return
        lowered = line[:13].lower()
        if lowered.startswith(_KEPT_HEADERS):
            name, _, value = line.decode("latin-1").partition(":")
            self.headers[name.strip().lower()] = value.strip()


class CurlTransport:
    def __init__(self, *, response_max_bytes: int = 32_768, max_connections: int = 512) -> None:
        self._limit = response_max_bytes
        self._ca_bundle = default_ca_bundle()
        self._loop = asyncio.get_running_loop()
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._multi.setopt(pycurl.M_MAXCONNECTS, max_connections)
        self._active: dict[pycurl.Curl, _Transfer] = {}
        self._free: list[pycurl.Curl] = []
        self._watched: dict[int, int] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def in_flight(self) -> int:
        return len(self._active)

    def submit(self, request: Request, done: Done) -> None:
        isolated = _isolated(request.options)
        curl = pycurl.Curl() if isolated or not self._free else self._free.pop()
        transfer = _Transfer(request, done, time.time_ns() // 1_000_000, self._limit, isolated)
        try:
            _configure(curl, request, transfer.write if request.keep_body else _discard)
            curl.setopt(pycurl.HEADERFUNCTION, transfer.header)
            if request.tls is None or request.tls.ca is None:
                curl.setopt(pycurl.CAINFO, self._ca_bundle)
            if isolated:
                _isolate(curl)
        except (pycurl.error, UnicodeError, ValueError, TypeError) as exc:
            curl.close()
            done(Response(0, error=f"Invalid request option: {exc}"))
            return
        self._active[curl] = transfer
        self._multi.add_handle(curl)

    async def aclose(self) -> None:
        for curl, transfer in list(self._active.items()):
            self._multi.remove_handle(curl)
            curl.close()
            transfer.done(Response(0, error="Aborted: the server is shutting down"))
        self._active.clear()
        for fd in list(self._watched):
            self._unwatch(fd)
        if self._timer is not None:
            self._timer.cancel()
        for curl in self._free:
            curl.close()
        self._free.clear()
        self._multi.close()

    # libcurl -> loop

    def _on_socket(self, event: int, fd: int, multi: Any, data: Any) -> None:
        if event == pycurl.POLL_REMOVE:
            self._unwatch(fd)
            return
        self._unwatch(fd)
        if event in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._watched[fd] = event

    def _unwatch(self, fd: int) -> None:
        event = self._watched.pop(fd, None)
        if event in (pycurl.POLL_IN, pycurl.POLL_INOUT):
            self._loop.remove_reader(fd)
        if event in (pycurl.POLL_OUT, pycurl.POLL_INOUT):
            self._loop.remove_writer(fd)

    def _on_timer(self, timeout_ms: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if timeout_ms >= 0:
            self._timer = self._loop.call_later(
                timeout_ms / 1000, self._act, pycurl.SOCKET_TIMEOUT, 0
            )

    # loop -> libcurl

    def _act(self, fd: int, events: int) -> None:
        if fd == pycurl.SOCKET_TIMEOUT:
            self._timer = None
        while True:
            try:
                code, _ = self._multi.socket_action(fd, events)
            except pycurl.error as exc:
                code = exc.args[0]
            if code != pycurl.E_CALL_MULTI_PERFORM:
                break
        self._collect()

    def _collect(self) -> None:
        while True:
            queued, succeeded, failed = self._multi.info_read()
            for curl in succeeded:
                self._finish(curl, None)
            for curl, _code, message in failed:
                self._finish(curl, message or "transfer failed")
            if not queued:
                return

    def _finish(self, curl: pycurl.Curl, error: str | None) -> None:
        transfer = self._active.pop(curl)
        self._multi.remove_handle(curl)
        status = 0 if error else int(curl.getinfo(pycurl.RESPONSE_CODE))
        response = Response(
            status_code=status,
            body=b"".join(transfer.chunks),
            error=error,
            started_at_ms=transfer.started_at_ms,
            duration_ms=int(curl.getinfo(pycurl.TOTAL_TIME) * 1000),
            headers=transfer.headers,
        )
        if transfer.isolated or len(self._free) >= _FREE_HANDLES:
            curl.close()
        else:
            curl.reset()
            self._free.append(curl)
        transfer.done(response)


def _discard(chunk: bytes) -> None:
    return None


def _isolated(options: Options) -> bool:
    """Options that leave state behind (DNS entries, cookies, HSTS, connections) in libcurl."""
    return options is not DEFAULT_OPTIONS and bool(
        options.resolve
        or options.doh_url
        or options.dns_servers
        or options.cookie_jar
        or options.hsts
        or options.haproxy_protocol
        or options.haproxy_client_ip
    )


def _isolate(curl: pycurl.Curl) -> None:
    """A transfer of its own: a private DNS cache, a new connection closed afterwards, and a
    handle that is closed (with its cookies and HSTS entries) rather than reused."""
    share = pycurl.CurlShare()
    share.setopt(pycurl.SH_SHARE, pycurl.LOCK_DATA_DNS)
    curl.setopt(pycurl.SHARE, share)
    curl.setopt(pycurl.FRESH_CONNECT, 1)
    curl.setopt(pycurl.FORBID_REUSE, 1)


def _configure(curl: pycurl.Curl, request: Request, write: Callable[[bytes], None]) -> None:
    setopt = curl.setopt
    setopt(pycurl.URL, request.url.encode())
    setopt(pycurl.NOSIGNAL, 1)
    setopt(pycurl.TIMEOUT_MS, request.timeout_ms)
    setopt(pycurl.WRITEFUNCTION, write)
    setopt(pycurl.HTTPHEADER, [header.encode() for header in (*request.headers, "Expect:")])
    if request.user_agent:
        setopt(pycurl.USERAGENT, request.user_agent.encode())
    _set_method(curl, request)
    if request.tls is not None:
        _set_tls(curl, request.tls)
    if request.options is DEFAULT_OPTIONS:
        _set_defaults(curl)
    else:
        set_options(curl, request.options)


def _set_defaults(curl: pycurl.Curl) -> None:
    """What ``set_options`` sets for ``DEFAULT_OPTIONS``, without looking at each option."""
    setopt = curl.setopt
    setopt(pycurl.PROTOCOLS, _PROTOCOLS)
    setopt(pycurl.REDIR_PROTOCOLS, _PROTOCOLS)
    setopt(pycurl.FOLLOWLOCATION, 1)
    setopt(pycurl.MAXREDIRS, 8)
    setopt(pycurl.AUTOREFERER, 1)
    setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    setopt(pycurl.TCP_KEEPALIVE, 1)
    setopt(pycurl.TCP_KEEPIDLE, 30)
    setopt(pycurl.TCP_KEEPINTVL, 30)


def _set_method(curl: pycurl.Curl, request: Request) -> None:
    method = request.method
    if request.body is not None or method == "POST":
        curl.setopt(pycurl.POSTFIELDS, request.body or b"")
    if method != "GET" and method != "POST":
        curl.setopt(pycurl.CUSTOMREQUEST, method)


def _set_material(curl: pycurl.Curl, material: Material, path_opt: int, blob_opt: int) -> None:
    if material.path is not None:
        curl.setopt(path_opt, material.path)
    else:
        curl.setopt(blob_opt, material.blob or b"")


def _set_tls(curl: pycurl.Curl, tls: Tls) -> None:
    if tls.ca is not None:
        _set_material(curl, tls.ca, pycurl.CAINFO, pycurl.CAINFO_BLOB)
    if tls.cert is not None:
        _set_material(curl, tls.cert, pycurl.SSLCERT, pycurl.SSLCERT_BLOB)
    if tls.key is not None:
        _set_material(curl, tls.key, pycurl.SSLKEY, pycurl.SSLKEY_BLOB)
    if tls.cert_password is not None:
        curl.setopt(pycurl.KEYPASSWD, tls.cert_password)


_HTTP_VERSIONS = {
    "0.9": pycurl.CURL_HTTP_VERSION_1_0,
    "1.0": pycurl.CURL_HTTP_VERSION_1_0,
    "1.1": pycurl.CURL_HTTP_VERSION_1_1,
    "2": pycurl.CURL_HTTP_VERSION_2_0,
    "2-prior-knowledge": pycurl.CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE,
    "3": pycurl.CURL_HTTP_VERSION_3,
}
_TLS_MIN = {
    "1.0": pycurl.SSLVERSION_TLSv1_0,
    "1.1": pycurl.SSLVERSION_TLSv1_1,
    "1.2": pycurl.SSLVERSION_TLSv1_2,
    "1.3": pycurl.SSLVERSION_TLSv1_3,
}
_TLS_MAX = {
    "1.0": pycurl.SSLVERSION_MAX_TLSv1_0,
    "1.1": pycurl.SSLVERSION_MAX_TLSv1_1,
    "1.2": pycurl.SSLVERSION_MAX_TLSv1_2,
    "1.3": pycurl.SSLVERSION_MAX_TLSv1_3,
}
_AUTH_SCHEMES = {
    "basic": pycurl.HTTPAUTH_BASIC,
    "digest": pycurl.HTTPAUTH_DIGEST,
    "ntlm": pycurl.HTTPAUTH_NTLM,
}
_PROTOCOL_BITS = {"http": pycurl.PROTO_HTTP, "https": pycurl.PROTO_HTTPS}
# Options pycurl does not name (curl/curl.h).
_DOH_SSL_VERIFYPEER = 306
_DOH_SSL_VERIFYHOST = 307
_PROXYTYPE_HTTPS = 2


def _protocols(names: tuple[str, ...]) -> int:
    bits = 0
    for name in names:
        bits |= _PROTOCOL_BITS[name]
    return bits


def set_options(curl: pycurl.Curl, options: Options) -> None:
    setopt = curl.setopt
    setopt(pycurl.PROTOCOLS, _protocols(options.protocols))
    setopt(pycurl.REDIR_PROTOCOLS, _protocols(options.redirect_protocols))
    setopt(pycurl.FOLLOWLOCATION, int(options.follow_redirects))
    setopt(pycurl.MAXREDIRS, options.max_redirects)
    setopt(pycurl.AUTOREFERER, int(options.auto_referer))
    if options.referer:
        setopt(pycurl.REFERER, options.referer.encode())
    setopt(pycurl.HTTP_VERSION, _HTTP_VERSIONS[options.http_version])
    if options.http_version == "0.9":
        setopt(pycurl.HTTP09_ALLOWED, 1)
    if options.ip_version:
        resolve_v4 = options.ip_version == 4
        setopt(pycurl.IPRESOLVE, pycurl.IPRESOLVE_V4 if resolve_v4 else pycurl.IPRESOLVE_V6)
    setopt(pycurl.TCP_KEEPALIVE, int(options.keepalive_s > 0))
    if options.keepalive_s:
        setopt(pycurl.TCP_KEEPIDLE, options.keepalive_s)
        setopt(pycurl.TCP_KEEPINTVL, options.keepalive_s)
    setopt(pycurl.SSL_SESSIONID_CACHE, int(options.session_id_cache))
    _set_auth(curl, options)
    _set_cookies(curl, options)
    _set_name_resolution(curl, options)
    _set_tls_options(curl, options)
    _set_proxy(curl, options)


def _set_credentials(curl: pycurl.Curl, auth: Auth) -> None:
    curl.setopt(pycurl.USERNAME, auth.username.encode())
    curl.setopt(pycurl.PASSWORD, auth.password.encode())


def _set_auth(curl: pycurl.Curl, options: Options) -> None:
    auth = options.auth or options.trusted_redirect_auth
    if auth is None:
        return
    _set_credentials(curl, auth)
    if auth.aws_sigv4 is not None:
        curl.setopt(pycurl.AWS_SIGV4, auth.aws_sigv4)
    else:
        curl.setopt(pycurl.HTTPAUTH, _AUTH_SCHEMES[auth.scheme])
    if options.trusted_redirect_auth is not None:
        curl.setopt(pycurl.UNRESTRICTED_AUTH, 1)


def _set_cookies(curl: pycurl.Curl, options: Options) -> None:
    if options.cookies:
        curl.setopt(pycurl.COOKIE, options.cookies.encode())
    for line in options.cookie_jar:
        curl.setopt(pycurl.COOKIELIST, line.encode())


def _set_name_resolution(curl: pycurl.Curl, options: Options) -> None:
    if options.resolve:
        curl.setopt(pycurl.RESOLVE, list(options.resolve))
    if options.dns_servers:
        curl.setopt(pycurl.DNS_SERVERS, ",".join(options.dns_servers))
    if options.doh_url:
        curl.setopt(pycurl.DOH_URL, options.doh_url)
        if options.doh_insecure:
            curl.setopt(_DOH_SSL_VERIFYPEER, 0)
            curl.setopt(_DOH_SSL_VERIFYHOST, 0)


def _set_tls_options(curl: pycurl.Curl, options: Options) -> None:
    if options.insecure:
        curl.setopt(pycurl.SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.SSL_VERIFYHOST, 0)
    if options.tls_min or options.tls_max:
        minimum = _TLS_MIN[options.tls_min] if options.tls_min else pycurl.SSLVERSION_DEFAULT
        maximum = _TLS_MAX[options.tls_max] if options.tls_max else 0
        curl.setopt(pycurl.SSLVERSION, minimum | maximum)
    if options.cert_type:
        curl.setopt(pycurl.SSLCERTTYPE, options.cert_type)
    if options.key_type:
        curl.setopt(pycurl.SSLKEYTYPE, options.key_type)
    if options.cert_status:
        curl.setopt(pycurl.SSL_VERIFYSTATUS, 1)
    if isinstance(options.hsts, bytes):
        curl.setopt(pycurl.HSTS, hsts_file(options.hsts))
        curl.setopt(pycurl.HSTS_CTRL, pycurl.CURLHSTS_ENABLE | pycurl.CURLHSTS_READONLYFILE)
    elif options.hsts:
        curl.setopt(pycurl.HSTS_CTRL, pycurl.CURLHSTS_ENABLE)
    if options.haproxy_protocol or options.haproxy_client_ip:
        curl.setopt(pycurl.HAPROXYPROTOCOL, 1)
    if options.haproxy_client_ip:
        curl.setopt(pycurl.HAPROXY_CLIENT_IP, options.haproxy_client_ip)


def _set_proxy(curl: pycurl.Curl, options: Options) -> None:
    proxy = options.proxy
    if proxy is None:
        return
    curl.setopt(pycurl.PROXY, proxy.url)
    if proxy.url.startswith("https:"):
        curl.setopt(pycurl.PROXYTYPE, _PROXYTYPE_HTTPS)
    elif proxy.http10:
        curl.setopt(pycurl.PROXYTYPE, pycurl.PROXYTYPE_HTTP_1_0)
    if proxy.headers:
        curl.setopt(pycurl.HEADEROPT, pycurl.HEADER_SEPARATE)
        curl.setopt(pycurl.PROXYHEADER, [header.encode() for header in proxy.headers])
    if proxy.insecure:
        curl.setopt(pycurl.PROXY_SSL_VERIFYPEER, 0)
        curl.setopt(pycurl.PROXY_SSL_VERIFYHOST, 0)
    if proxy.auth is not None:
        curl.setopt(pycurl.PROXYUSERNAME, proxy.auth.username.encode())
        curl.setopt(pycurl.PROXYPASSWORD, proxy.auth.password.encode())
        curl.setopt(pycurl.PROXYAUTH, _AUTH_SCHEMES[proxy.auth.scheme])


_HSTS_DIR = Path(tempfile.gettempdir()) / "tasks-server-hsts"


def hsts_file(content: bytes) -> str:
    """A file holding ``content`` (libcurl reads HSTS preloads from files only)."""
    path = _HSTS_DIR / hashlib.sha256(content).hexdigest()
    if not path.exists():
        _HSTS_DIR.mkdir(mode=0o700, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}")
        partial.write_bytes(content)
        partial.replace(path)
    return str(path)


def unsupported_options() -> dict[str, str]:
    """The options this libcurl cannot honour, with the reason, as ``refusals`` expects."""
    features = pycurl.version_info()[4]
    refused: dict[str, str] = {}
    if not features & pycurl.VERSION_NTLM:
        reason = "NTLM is not available in the linked libcurl"
        refused.update(authNtlm=reason, proxyAuthNtlm=reason)
    if not features & pycurl.VERSION_HTTP3:
        refused["httpVersion=3"] = "HTTP/3 is not available in the linked libcurl"
    if not features & pycurl.VERSION_HTTP2:
        reason = "HTTP/2 is not available in the linked libcurl"
        refused.update({"httpVersion=2": reason, "httpVersion=2-prior-knowledge": reason})
    probe = pycurl.Curl()
    try:
        probe.setopt(pycurl.DNS_SERVERS, "127.0.0.1")
    except pycurl.error:
        refused["dnsServer"] = (
            "Custom DNS servers need a libcurl built with c-ares; use resolve or dohUrl"
        )
    finally:
        probe.close()
    return refused
