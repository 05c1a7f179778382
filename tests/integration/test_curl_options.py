"""The delivery options as libcurl applies them (``set_options``), against real servers on
127.0.0.1: what a target, a forward proxy or a PROXY-protocol listener actually receives."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pycurl
import pytest

from tasks_server.dispatch.transport.base import Auth, Options, Proxy, Request, Response
from tasks_server.dispatch.transport.curl import CurlTransport, hsts_file, unsupported_options

from .target import Seen, Target


@pytest.fixture
async def curl() -> AsyncIterator[CurlTransport]:
    """A transport of its own per test: libcurl's DNS cache lives as long as the transport."""
    transport = CurlTransport(response_max_bytes=1_000)
    yield transport
    await transport.aclose()


async def fetch(
    transport: CurlTransport, url: str, options: Options, *, headers: tuple[str, ...] = ()
) -> Response:
    answered: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    request = Request(url=url, method="GET", headers=headers, timeout_ms=10_000, options=options)
    transport.submit(request, answered.set_result)
    return await asyncio.wait_for(answered, 15)


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


@dataclass(frozen=True)
class Proxied:
    request_line: str
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class ForwardProxy:
    """An HTTP forward proxy that answers itself: it records the absolute-form request line
    (``GET http://host/path HTTP/1.1``) and the headers, and forwards nothing."""

    def __init__(self) -> None:
        seen: list[Proxied] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                seen.append(Proxied(self.requestline, list(self.headers.items())))
                body = f"proxied {self.path}".encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.seen = seen
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> ForwardProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class ProxyProtocolListener:
    """Accepts connections, keeps every byte up to the end of the HTTP head, answers 200."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.port: int = self._socket.getsockname()[1]
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = connection.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                self.received.append(data)
                connection.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )

    def __enter__(self) -> ProxyProtocolListener:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._socket.close()


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as server:
        yield server


@pytest.fixture
def listener() -> Iterator[ProxyProtocolListener]:
    with ProxyProtocolListener() as server:
        yield server


class TestAuth:
    async def test_basic(self, curl: CurlTransport, target: Target) -> None:
        options = Options(auth=Auth("basic", "user", "pa:ss w0rd!"))
        response = await fetch(curl, target.url("/basic"), options)
        assert response.status_code == 200
        [seen] = target.seen
        assert seen.header("Authorization") == basic("user", "pa:ss w0rd!")

    async def test_digest_answers_the_challenge(self, curl: CurlTransport, target: Target) -> None:
        options = Options(auth=Auth("digest", "user", "s3cret"))
        response = await fetch(curl, target.url("/digest/user/s3cret"), options)
        assert (response.status_code, response.body) == (200, b"digest ok")
        challenged, proved = target.seen
        assert challenged.header("Authorization") is None
        assert (proved.header("Authorization") or "").startswith("Digest ")

    async def test_digest_with_a_wrong_password_stays_401(
        self, curl: CurlTransport, target: Target
    ) -> None:
        options = Options(auth=Auth("digest", "user", "wrong"))
        response = await fetch(curl, target.url("/digest/user/s3cret"), options)
        assert response.status_code == 401
        assert len(target.seen) == 2

    async def test_digest_credentials_are_never_sent_in_the_clear(
        self, curl: CurlTransport, target: Target
    ) -> None:
        options = Options(auth=Auth("digest", "user", "s3cret"))
        await fetch(curl, target.url("/digest/user/s3cret"), options)
        offered = [seen.header("Authorization") for seen in target.seen]
        assert offered[0] is None
        assert [value.split(" ", 1)[0] for value in offered[1:] if value] == ["Digest"]
        assert 'response="' in (offered[1] or "")

    async def test_credentials_stay_on_their_host_across_a_redirect_unless_trusted(
        self, curl: CurlTransport, target: Target
    ) -> None:
        elsewhere = target.url("/landed").replace("127.0.0.1", "other.test")
        resolve = (f"other.test:{target.port}:127.0.0.1",)
        url = target.url(f"/location?to={elsewhere}")
        plain = Options(auth=Auth("basic", "user", "pass"), resolve=resolve)
        assert (await fetch(curl, url, plain)).status_code == 200
        trusted = Options(trusted_redirect_auth=Auth("basic", "user", "pass"), resolve=resolve)
        assert (await fetch(curl, url, trusted)).status_code == 200
        first, landed, again, trusted_landed = target.seen
        assert (
            first.header("Authorization") == again.header("Authorization") == basic("user", "pass")
        )
        assert landed.header("Authorization") is None
        assert trusted_landed.header("Authorization") == basic("user", "pass")


class TestCookies:
    async def test_pairs_arrive_as_sent(self, curl: CurlTransport, target: Target) -> None:
        options = Options(cookies="sid=abc123; lang=en-US; t=a=b")
        await fetch(curl, target.url("/c"), options)
        [seen] = target.seen
        assert seen.header("Cookie") == "sid=abc123; lang=en-US; t=a=b"
        assert seen.header_count("Cookie") == 1

    async def test_a_jar_sends_the_cookies_that_match_the_host_and_path(
        self, curl: CurlTransport, target: Target
    ) -> None:
        jar = (
            "127.0.0.1\tFALSE\t/\tFALSE\t0\tsid\tabc123",
            "#HttpOnly_127.0.0.1\tFALSE\t/\tFALSE\t0\thidden\tyes",
            "127.0.0.1\tFALSE\t/elsewhere\tFALSE\t0\tpath\tno",
            "other.example\tFALSE\t/\tFALSE\t0\tforeign\tno",
            "127.0.0.1\tFALSE\t/\tFALSE\t1\texpired\tno",
        )
        await fetch(curl, target.url("/c"), Options(cookie_jar=jar))
        [seen] = target.seen
        sent = sorted((seen.header("Cookie") or "").split("; "))
        assert sent == ["hidden=yes", "sid=abc123"]


class TestReferer:
    async def test_a_given_referer(self, curl: CurlTransport, target: Target) -> None:
        options = Options(referer="https://ref.example/page?q=1", auto_referer=False)
        await fetch(curl, target.url("/r"), options)
        assert target.seen[0].header("Referer") == "https://ref.example/page?q=1"

    async def test_auto_sets_it_on_redirects(self, curl: CurlTransport, target: Target) -> None:
        await fetch(curl, target.url("/redirect/204"), Options(auto_referer=True))
        first, second = target.seen
        assert first.header("Referer") is None
        assert second.header("Referer") == target.url("/redirect/204")

    async def test_neither(self, curl: CurlTransport, target: Target) -> None:
        await fetch(curl, target.url("/redirect/204"), Options(auto_referer=False))
        assert [seen.header("Referer") for seen in target.seen] == [None, None]


class TestRedirects:
    async def test_followed(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, target.url("/chain/3"), Options(follow_redirects=True))
        assert (response.status_code, response.body) == (200, b"end of chain")
        assert [s.path for s in target.seen] == ["/chain/3", "/chain/2", "/chain/1", "/chain/0"]

    async def test_not_followed_the_3xx_is_the_answer(
        self, curl: CurlTransport, target: Target
    ) -> None:
        response = await fetch(curl, target.url("/chain/3"), Options(follow_redirects=False))
        assert (response.status_code, response.error) == (302, None)
        assert [s.path for s in target.seen] == ["/chain/3"]

    async def test_up_to_max_redirects(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, target.url("/chain/2"), Options(max_redirects=2))
        assert response.status_code == 200
        assert len(target.seen) == 3

    async def test_one_more_is_an_error(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, target.url("/chain/3"), Options(max_redirects=2))
        assert response.status_code == 0
        assert "redirect" in (response.error or "").lower()
        assert [s.path for s in target.seen] == ["/chain/3", "/chain/2", "/chain/1"]

    async def test_zero_redirects_allowed(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, target.url("/chain/1"), Options(max_redirects=0))
        assert response.status_code == 0
        assert [s.path for s in target.seen] == ["/chain/1"]


class TestProtocols:
    async def test_https_only_refuses_an_http_url(
        self, curl: CurlTransport, target: Target
    ) -> None:
        response = await fetch(curl, target.url("/p"), Options(protocols=("https",)))
        assert response.status_code == 0
        assert "http" in (response.error or "").lower()
        assert target.seen == []

    async def test_http_only_lets_it_through(self, curl: CurlTransport, target: Target) -> None:
        response = await fetch(curl, target.url("/p"), Options(protocols=("http",)))
        assert response.status_code == 200

    async def test_https_only_redirects_refuse_a_redirect_to_http(
        self, curl: CurlTransport, target: Target
    ) -> None:
        url = target.url(f"/location?to={target.url('/plain')}")
        response = await fetch(curl, url, Options(redirect_protocols=("https",)))
        assert response.status_code == 0
        assert response.error
        assert [s.path for s in target.seen] == ["/location"]

    async def test_redirects_to_http_are_followed_by_default(
        self, curl: CurlTransport, target: Target
    ) -> None:
        url = target.url(f"/location?to={target.url('/plain')}")
        response = await fetch(curl, url, Options(max_redirects=1))
        assert response.status_code == 200
        assert [s.path for s in target.seen] == ["/location", "/plain"]


class TestNameResolution:
    async def test_resolve_points_a_made_up_name_at_127_0_0_1(
        self, curl: CurlTransport, target: Target
    ) -> None:
        url = f"http://made-up.test:{target.port}/named"
        options = Options(resolve=(f"made-up.test:{target.port}:127.0.0.1",))
        response = await fetch(curl, url, options)
        assert (response.status_code, response.body) == (200, b"ok /named")
        [seen] = target.seen
        assert seen.header("Host") == f"made-up.test:{target.port}"

    async def test_without_it_the_name_does_not_resolve(
        self, curl: CurlTransport, target: Target
    ) -> None:
        response = await fetch(curl, f"http://made-up.test:{target.port}/", Options())
        assert response.status_code == 0
        assert target.seen == []

    async def test_an_entry_for_another_port_does_not_apply(
        self, curl: CurlTransport, target: Target
    ) -> None:
        options = Options(resolve=(f"made-up.test:{target.port + 1}:127.0.0.1",))
        response = await fetch(curl, f"http://made-up.test:{target.port}/", options)
        assert response.status_code == 0

    async def test_the_ip_version_picks_the_address(
        self, curl: CurlTransport, target: Target
    ) -> None:
        """The target listens on 127.0.0.1 only; the name resolves to ::1 and 127.0.0.1."""
        resolve = (f"dual.test:{target.port}:[::1],127.0.0.1",)
        url = f"http://dual.test:{target.port}/v"
        v4 = await fetch(curl, url, Options(resolve=resolve, ip_version=4))
        assert v4.status_code == 200
        v6 = await fetch(curl, url, Options(resolve=resolve, ip_version=6))
        assert v6.status_code == 0
        assert len(target.seen) == 1


class TestHttpVersion:
    @pytest.mark.parametrize("version", ["1.0", "1.1"])
    async def test_the_request_line(
        self, curl: CurlTransport, target: Target, version: str
    ) -> None:
        await fetch(curl, target.url("/v"), Options(http_version=version))
        assert target.seen[0].version == f"HTTP/{version}"


class TestForwardProxy:
    async def test_the_request_goes_to_the_proxy_with_its_headers_and_credentials(
        self, curl: CurlTransport, proxy: ForwardProxy
    ) -> None:
        options = Options(
            proxy=Proxy(
                url=f"http://127.0.0.1:{proxy.port}",
                headers=("X-Proxy-Token: p-123",),
                auth=Auth("basic", "proxy-user", "proxy-pass"),
            )
        )
        response = await fetch(
            curl, "http://made-up.test:8080/through?x=1", options, headers=("X-Target: t",)
        )
        assert (response.status_code, response.body) == (
            200,
            b"proxied http://made-up.test:8080/through?x=1",
        )
        [seen] = proxy.seen
        assert seen.request_line == "GET http://made-up.test:8080/through?x=1 HTTP/1.1"
        assert seen.header("Proxy-Authorization") == basic("proxy-user", "proxy-pass")
        assert seen.header("X-Proxy-Token") == "p-123"
        assert seen.header("X-Target") == "t"
        assert seen.header("Host") == "made-up.test:8080"

    async def test_target_credentials_are_not_proxy_credentials(
        self, curl: CurlTransport, proxy: ForwardProxy
    ) -> None:
        options = Options(
            auth=Auth("basic", "user", "pass"),
            proxy=Proxy(url=f"http://127.0.0.1:{proxy.port}"),
        )
        await fetch(curl, "http://made-up.test/x", options)
        [seen] = proxy.seen
        assert seen.header("Authorization") == basic("user", "pass")
        assert seen.header("Proxy-Authorization") is None


class TestHaProxyProtocol:
    async def test_a_proxy_protocol_v1_line_comes_first(
        self, curl: CurlTransport, listener: ProxyProtocolListener
    ) -> None:
        url = f"http://127.0.0.1:{listener.port}/h"
        response = await fetch(curl, url, Options(haproxy_protocol=True))
        assert response.status_code == 200
        [received] = listener.received
        line, _, rest = received.partition(b"\r\n")
        parts = line.decode().split(" ")
        assert parts[:4] == ["PROXY", "TCP4", "127.0.0.1", "127.0.0.1"]
        assert parts[5] == str(listener.port)
        assert rest.startswith(b"GET /h HTTP/1.1\r\n")

    async def test_with_a_client_ip(
        self, curl: CurlTransport, listener: ProxyProtocolListener
    ) -> None:
        url = f"http://127.0.0.1:{listener.port}/h"
        await fetch(curl, url, Options(haproxy_client_ip="192.0.2.7"))
        [received] = listener.received
        assert received.startswith(b"PROXY TCP4 192.0.2.7 ")

    async def test_not_without_the_option(
        self, curl: CurlTransport, listener: ProxyProtocolListener
    ) -> None:
        await fetch(curl, f"http://127.0.0.1:{listener.port}/h", Options(insecure=True))
        [received] = listener.received
        assert received.startswith(b"GET /h HTTP/1.1\r\n")


class TestReusedHandles:
    async def test_a_handle_forgets_the_options_of_its_previous_request(
        self, curl: CurlTransport, target: Target, proxy: ForwardProxy
    ) -> None:
        loaded = Options(
            auth=Auth("basic", "user", "pass"),
            cookies="sid=abc",
            referer="https://ref.example/",
            auto_referer=False,
            http_version="1.0",
            follow_redirects=False,
        )
        await fetch(curl, target.url("/first"), loaded)
        via_proxy = Options(proxy=Proxy(url=f"http://127.0.0.1:{proxy.port}"))
        await fetch(curl, target.url("/second"), via_proxy)
        response = await fetch(curl, target.url("/redirect/204"), Options())
        assert response.status_code == 204
        first, redirected, final = target.seen
        assert first.header("Authorization") and first.header("Cookie")
        assert redirected.path == "/redirect/204"
        for seen in (redirected, final):
            assert seen.header("Authorization") is None
            assert seen.header("Cookie") is None
            assert seen.version == "HTTP/1.1"
        assert redirected.header("Referer") is None
        assert final.header("Referer") == target.url("/redirect/204")
        assert len(proxy.seen) == 1


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def sigv4_signature(seen: Seen, secret: str, date: str, region: str, service: str) -> str:
    """AWS Signature Version 4 of a GET without a query, computed here from the specification,
    over the headers the request says it signed."""
    signed = re.search(r"SignedHeaders=([^,]+)", seen.header("Authorization") or "")
    assert signed is not None
    names = signed.group(1).split(";")
    canonical_headers = "".join(f"{name}:{(seen.header(name) or '').strip()}\n" for name in names)
    canonical_request = "\n".join(
        [
            seen.method,
            seen.path,
            "",
            canonical_headers,
            ";".join(names),
            seen.header("x-amz-content-sha256") or "",
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            seen.header("X-Amz-Date") or "",
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = _hmac(("AWS4" + secret).encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


class TestMoreOptions:
    async def test_aws_sigv4_signs_the_request(self, curl: CurlTransport, target: Target) -> None:
        options = Options(
            auth=Auth("aws-sigv4", "AKIDEXAMPLE", "wJalrXUtnFEMI", aws_sigv4="aws:amz:eu-west-1:s3")
        )
        response = await fetch(curl, target.url("/bucket/key"), options)
        assert response.status_code == 200
        [seen] = target.seen
        amz_date = seen.header("X-Amz-Date") or ""
        assert re.fullmatch(r"\d{8}T\d{6}Z", amz_date)
        date = amz_date[:8]
        authorization = seen.header("Authorization") or ""
        assert authorization.startswith(
            f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{date}/eu-west-1/s3/aws4_request, "
        )
        assert seen.header("x-amz-content-sha256") == hashlib.sha256(b"").hexdigest()
        signature = authorization.rsplit("Signature=", 1)[1]
        assert signature == sigv4_signature(seen, "wJalrXUtnFEMI", date, "eu-west-1", "s3")
        assert "wJalrXUtnFEMI" not in authorization

    async def test_an_hsts_preload_upgrades_its_host_to_https(
        self, curl: CurlTransport, target: Target
    ) -> None:
        """The target speaks plain HTTP: a request upgraded to HTTPS cannot reach it."""
        preload = b'hsts.test "20991231 00:00:00"\n'
        resolve = (
            f"hsts.test:{target.port}:127.0.0.1",
            f"plain.test:{target.port}:127.0.0.1",
        )
        without = await fetch(curl, f"http://hsts.test:{target.port}/n", Options(resolve=resolve))
        assert without.status_code == 200
        options = Options(resolve=resolve, hsts=preload)
        upgraded = await fetch(curl, f"http://hsts.test:{target.port}/h", options)
        assert upgraded.status_code == 0
        assert upgraded.error
        untouched = await fetch(curl, f"http://plain.test:{target.port}/p", options)
        assert untouched.status_code == 200
        assert [seen.path for seen in target.seen] == ["/n", "/p"]

    def test_hsts_preloads_are_kept_in_files_named_by_their_content(self) -> None:
        first = hsts_file(b'a.test "20991231 00:00:00"\n')
        assert hsts_file(b'a.test "20991231 00:00:00"\n') == first
        assert Path(first).read_bytes() == b'a.test "20991231 00:00:00"\n'
        assert hsts_file(b'b.test "20991231 00:00:00"\n') != first

    async def test_http_0_9_allowed_asks_with_http_1_0(
        self, curl: CurlTransport, target: Target
    ) -> None:
        response = await fetch(curl, target.url("/nine"), Options(http_version="0.9"))
        assert response.status_code == 200
        assert target.seen[0].version == "HTTP/1.0"

    async def test_keep_alive_off_and_no_session_cache_still_deliver(
        self, curl: CurlTransport, target: Target
    ) -> None:
        options = Options(keepalive_s=0, session_id_cache=False, cert_status=False)
        assert (await fetch(curl, target.url("/k"), options)).status_code == 200

    async def test_an_option_libcurl_refuses_is_answered_not_raised(
        self, curl: CurlTransport, target: Target
    ) -> None:
        """``dnsServer`` on a libcurl without c-ares: refused at registration, and answered
        as a failed attempt should it reach the transport anyway."""
        assert "dnsServer" in unsupported_options(), "this libcurl was built with c-ares"
        options = Options(dns_servers=("192.0.2.53",))
        answers: list[Response] = []
        curl.submit(
            Request(url=target.url("/refused"), method="GET", options=options), answers.append
        )
        [answer] = answers
        assert answer.status_code == 0
        assert (answer.error or "").startswith("Invalid request option")
        assert curl.in_flight == 0
        assert (await fetch(curl, target.url("/after"), Options())).status_code == 200
        assert [seen.path for seen in target.seen] == ["/after"]

    async def test_a_proxy_speaking_http_1_0(
        self, curl: CurlTransport, proxy: ForwardProxy
    ) -> None:
        options = Options(
            proxy=Proxy(url=f"http://127.0.0.1:{proxy.port}", http10=True, insecure=True)
        )
        response = await fetch(curl, "http://made-up.test/old", options)
        assert response.status_code == 200
        [seen] = proxy.seen
        assert seen.request_line.startswith("GET http://made-up.test/old HTTP/1.")


class TestUnsupportedOptions:
    def features(self, monkeypatch: pytest.MonkeyPatch, without: int) -> dict[str, str]:
        info = list(pycurl.version_info())
        info[4] &= ~without
        monkeypatch.setattr(pycurl, "version_info", lambda: tuple(info))
        return unsupported_options()

    def test_without_ntlm(self, monkeypatch: pytest.MonkeyPatch) -> None:
        found = self.features(monkeypatch, pycurl.VERSION_NTLM)
        reason = "NTLM is not available in the linked libcurl"
        assert (found["authNtlm"], found["proxyAuthNtlm"]) == (reason, reason)

    def test_without_http3(self, monkeypatch: pytest.MonkeyPatch) -> None:
        found = self.features(monkeypatch, pycurl.VERSION_HTTP3)
        assert found["httpVersion=3"] == "HTTP/3 is not available in the linked libcurl"

    def test_without_http2(self, monkeypatch: pytest.MonkeyPatch) -> None:
        found = self.features(monkeypatch, pycurl.VERSION_HTTP2)
        reason = "HTTP/2 is not available in the linked libcurl"
        assert found["httpVersion=2"] == found["httpVersion=2-prior-knowledge"] == reason

    def test_with_everything(self, monkeypatch: pytest.MonkeyPatch) -> None:
        every = pycurl.VERSION_NTLM | pycurl.VERSION_HTTP2 | pycurl.VERSION_HTTP3
        info = list(pycurl.version_info())
        info[4] |= every
        monkeypatch.setattr(pycurl, "version_info", lambda: tuple(info))
        assert set(unsupported_options()) <= {"dnsServer"}
