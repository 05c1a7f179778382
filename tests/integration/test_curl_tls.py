"""HTTPS through libcurl: a private CA given by path or content, client certificates (mTLS)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tasks_server.dispatch.transport.base import Material, Options, Request, Response, Tls
from tasks_server.dispatch.transport.curl import CurlTransport

from .target import Target

CLIENT = "client@tasks.test"
KEY_PASSWORD = "k3y-pa55"


@dataclass(frozen=True)
class Pki:
    ca_path: Path
    ca_pem: bytes
    cert_path: Path
    cert_pem: bytes
    key_path: Path
    key_pem: bytes
    encrypted_key_pem: bytes


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> Pki:
    folder = tmp_path_factory.mktemp("pki")
    client = ca.issue_cert(CLIENT)
    key = serialization.load_pem_private_key(client.private_key_pem.bytes(), password=None)
    encrypted = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(KEY_PASSWORD.encode()),
    )
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    client.cert_chain_pems[0].write_to_path(str(folder / "client.pem"))
    client.private_key_pem.write_to_path(str(folder / "client.key"))
    return Pki(
        ca_path=folder / "ca.pem",
        ca_pem=ca.cert_pem.bytes(),
        cert_path=folder / "client.pem",
        cert_pem=client.cert_chain_pems[0].bytes(),
        key_path=folder / "client.key",
        key_pem=client.private_key_pem.bytes(),
        encrypted_key_pem=encrypted,
    )


def server_context(ca: trustme.CA, *, client_certificates: bool) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    if client_certificates:
        ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@pytest.fixture(scope="module")
def https_target(ca: trustme.CA) -> Iterator[Target]:
    with Target(server_context(ca, client_certificates=False)).running() as server:
        yield server


@pytest.fixture(scope="module")
def mtls_target(ca: trustme.CA) -> Iterator[Target]:
    with Target(server_context(ca, client_certificates=True)).running() as server:
        yield server


@pytest.fixture
async def curl() -> AsyncIterator[CurlTransport]:
    transport = CurlTransport()
    yield transport
    await transport.aclose()


async def fetch(transport: CurlTransport, url: str, tls: Tls | None) -> Response:
    answered: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    request = Request(url=url, method="GET", tls=tls, timeout_ms=10_000)
    transport.submit(request, answered.set_result)
    return await asyncio.wait_for(answered, 15)


def no_answer(response: Response) -> bool:
    return response.status_code == 0 and bool(response.error)


class TestCa:
    async def test_a_private_ca_is_not_trusted_by_default(
        self, curl: CurlTransport, https_target: Target
    ) -> None:
        assert no_answer(await fetch(curl, https_target.url("/a"), None))

    async def test_ca_by_path(self, curl: CurlTransport, https_target: Target, pki: Pki) -> None:
        tls = Tls(ca=Material(path=str(pki.ca_path)))
        response = await fetch(curl, https_target.url("/by-path"), tls)
        assert (response.status_code, response.body) == (200, b"ok /by-path")

    async def test_ca_by_content(self, curl: CurlTransport, https_target: Target, pki: Pki) -> None:
        tls = Tls(ca=Material(blob=pki.ca_pem))
        response = await fetch(curl, https_target.url("/by-blob"), tls)
        assert (response.status_code, response.body) == (200, b"ok /by-blob")

    async def test_another_ca_is_refused(self, curl: CurlTransport, https_target: Target) -> None:
        stranger = trustme.CA().cert_pem.bytes()
        assert no_answer(await fetch(curl, https_target.url("/a"), Tls(ca=Material(blob=stranger))))

    async def test_a_handle_used_with_a_ca_forgets_it(
        self, curl: CurlTransport, https_target: Target, pki: Pki
    ) -> None:
        tls = Tls(ca=Material(blob=pki.ca_pem))
        assert (await fetch(curl, https_target.url("/1"), tls)).status_code == 200
        assert no_answer(await fetch(curl, https_target.url("/2"), None))


class TestClientCertificates:
    async def test_without_a_certificate_the_handshake_fails(
        self, curl: CurlTransport, mtls_target: Target, pki: Pki
    ) -> None:
        tls = Tls(ca=Material(path=str(pki.ca_path)))
        assert no_answer(await fetch(curl, mtls_target.url("/none"), tls))
        assert mtls_target.seen_at("/none") == []

    async def test_certificate_and_key_by_path(
        self, curl: CurlTransport, mtls_target: Target, pki: Pki
    ) -> None:
        tls = Tls(
            ca=Material(path=str(pki.ca_path)),
            cert=Material(path=str(pki.cert_path)),
            key=Material(path=str(pki.key_path)),
        )
        response = await fetch(curl, mtls_target.url("/paths"), tls)
        assert response.status_code == 200
        [seen] = mtls_target.seen_at("/paths")
        assert seen.peer_cert is not None
        assert ("email", CLIENT) in seen.peer_cert["subjectAltName"]

    async def test_certificate_and_key_by_content(
        self, curl: CurlTransport, mtls_target: Target, pki: Pki
    ) -> None:
        tls = Tls(
            ca=Material(blob=pki.ca_pem),
            cert=Material(blob=pki.cert_pem),
            key=Material(blob=pki.key_pem),
        )
        assert (await fetch(curl, mtls_target.url("/blobs"), tls)).status_code == 200
        assert len(mtls_target.seen_at("/blobs")) == 1

    async def test_an_encrypted_key_with_its_password(
        self, curl: CurlTransport, mtls_target: Target, pki: Pki
    ) -> None:
        tls = Tls(
            ca=Material(blob=pki.ca_pem),
            cert=Material(blob=pki.cert_pem),
            key=Material(blob=pki.encrypted_key_pem),
            cert_password=KEY_PASSWORD,
        )
        assert (await fetch(curl, mtls_target.url("/encrypted"), tls)).status_code == 200

    async def test_an_encrypted_key_with_a_wrong_password(
        self, curl: CurlTransport, mtls_target: Target, pki: Pki
    ) -> None:
        tls = Tls(
            ca=Material(blob=pki.ca_pem),
            cert=Material(blob=pki.cert_pem),
            key=Material(blob=pki.encrypted_key_pem),
            cert_password="wrong",
        )
        assert no_answer(await fetch(curl, mtls_target.url("/wrong"), tls))
        assert mtls_target.seen_at("/wrong") == []


async def fetch_with(
    transport: CurlTransport, url: str, options: Options, tls: Tls | None = None
) -> Response:
    answered: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
    request = Request(url=url, method="GET", tls=tls, timeout_ms=10_000, options=options)
    transport.submit(request, answered.set_result)
    return await asyncio.wait_for(answered, 15)


class TestTlsOptions:
    async def test_insecure_skips_the_certificate_checks(
        self, curl: CurlTransport, https_target: Target
    ) -> None:
        response = await fetch_with(curl, https_target.url("/insecure"), Options(insecure=True))
        assert (response.status_code, response.body) == (200, b"ok /insecure")

    async def test_insecure_does_not_carry_over_to_the_next_request(
        self, curl: CurlTransport, https_target: Target
    ) -> None:
        url = https_target.url
        insecure = await fetch_with(curl, url("/insecure/1"), Options(insecure=True))
        assert insecure.status_code == 200
        assert no_answer(await fetch(curl, url("/insecure/2"), None))
        assert no_answer(await fetch_with(curl, url("/insecure/3"), Options(http_version="1.0")))
        assert len(https_target.seen_at("/insecure/1")) == 1
        assert https_target.seen_at("/insecure/2") == https_target.seen_at("/insecure/3") == []

    @pytest.mark.parametrize(
        ("options", "negotiated"),
        [
            (Options(tls_max="1.2"), "TLSv1.2"),
            (Options(tls_min="1.3"), "TLSv1.3"),
            (Options(tls_min="1.2", tls_max="1.2"), "TLSv1.2"),
        ],
    )
    async def test_the_tls_versions(
        self, curl: CurlTransport, https_target: Target, pki: Pki, options: Options, negotiated: str
    ) -> None:
        path = f"/tls/{negotiated}/{options.tls_min}-{options.tls_max}"
        tls = Tls(ca=Material(blob=pki.ca_pem))
        response = await fetch_with(curl, https_target.url(path), options, tls)
        assert response.status_code == 200
        [seen] = https_target.seen_at(path)
        assert seen.tls_version == negotiated

    async def test_cert_status_needs_a_stapled_ocsp_answer(
        self, curl: CurlTransport, https_target: Target, pki: Pki
    ) -> None:
        tls = Tls(ca=Material(blob=pki.ca_pem))
        assert no_answer(
            await fetch_with(curl, https_target.url("/ocsp"), Options(cert_status=True), tls)
        )
        assert https_target.seen_at("/ocsp") == []

    async def test_a_der_client_certificate_with_cert_type(
        self, curl: CurlTransport, mtls_target: Target, pki: Pki, tmp_path: Path
    ) -> None:
        der = x509.load_pem_x509_certificate(pki.cert_pem).public_bytes(
            serialization.Encoding.DER
        )
        (tmp_path / "client.der").write_bytes(der)
        tls = Tls(
            ca=Material(blob=pki.ca_pem),
            cert=Material(path=str(tmp_path / "client.der")),
            key=Material(blob=pki.key_pem),
        )
        response = await fetch_with(
            curl, mtls_target.url("/der"), Options(cert_type="DER", key_type="PEM"), tls
        )
        assert response.status_code == 200
        [seen] = mtls_target.seen_at("/der")
        assert seen.peer_cert is not None
        assert ("email", CLIENT) in seen.peer_cert["subjectAltName"]
