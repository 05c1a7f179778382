"""Fixtures of the black-box acceptance suite: real server processes and real targets."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_ROOT = Path(__file__).resolve().parents[2]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

from tests.support.server import LIVE_SERVERS, ApiClient, ServerProcess  # noqa: E402
from tests.support.targets import TargetServer, TlsMaterial, make_tls_material  # noqa: E402


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.failed:
        for server in LIVE_SERVERS:
            report.sections.append((f"server log ({server.workdir.name})", server.log_tail()))
    return report


# -- targets ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def target() -> Iterator[TargetServer]:
    """The plain-HTTP target every test shares (filter its records by task id)."""
    with TargetServer() as server:
        yield server


@pytest.fixture(scope="session")
def tls_setup(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TargetServer, TlsMaterial]]:
    context, material = make_tls_material(tmp_path_factory.mktemp("tls"))
    with TargetServer(ssl_context=context) as server:
        yield server, material


@pytest.fixture(scope="session")
def tls_target(tls_setup: tuple[TargetServer, TlsMaterial]) -> TargetServer:
    """An HTTPS target that demands a client certificate signed by the test CA."""
    return tls_setup[0]


@pytest.fixture(scope="session")
def tls(tls_setup: tuple[TargetServer, TlsMaterial]) -> TlsMaterial:
    return tls_setup[1]


# -- servers ------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for every test whose state a fresh owner isolates."""
    process = ServerProcess(tmp_path_factory.mktemp("server"))
    process.start()
    try:
        yield process
    finally:
        try:
            process.stop()
        finally:
            process.close()


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[ApiClient]:
    """An unauthenticated client of the shared server."""
    with server.client() as client:
        yield client


@pytest.fixture
def make_owner(api: ApiClient) -> Iterator[Callable[..., ApiClient]]:
    """Register fresh owners on the shared server; each comes back as an authenticated client."""
    clients: list[ApiClient] = []

    def factory(name: str | None = None) -> ApiClient:
        client = api.new_owner(name)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def owner(make_owner: Callable[..., ApiClient]) -> ApiClient:
    """A fresh owner on the shared server (unique name), as an authenticated client."""
    return make_owner()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Start dedicated servers (for crash, restart and limit tests); all are killed afterwards."""
    started: list[ServerProcess] = []

    def factory(**kwargs: Any) -> ServerProcess:
        process = ServerProcess(tmp_path / f"server{len(started)}", **kwargs)
        started.append(process)
        return process.start()

    yield factory
    for process in started:
        try:
            if process.running:
                process.stop()
        finally:
            process.close()
