"""Run the real Tasks Server as a process, and talk to it over HTTP.

:class:`ServerProcess` starts ``python -m tasks_server serve`` on a free port with a database in
a temporary directory, waits for ``GET /status`` with a deadline, and can stop it (SIGTERM),
kill it (SIGKILL) and start it again on the same database. The process's output goes to a log
file whose tail is shown when something fails.

:class:`ApiClient` is a small ``httpx.Client`` wrapper speaking the API of ``docs/api.md``.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import httpx

T = TypeVar("T")

FINAL_STATES = frozenset({"SUCCESS", "ERROR", "REVOKED"})
DEFAULT_USER_AGENT = "Tasks-Server/1.0 (compatible; Linux x86_64; +http://tasks-server)"
ENVELOPE_KEYS = {"action", "message"}

# Every live ServerProcess, so a failing test can show their logs.
LIVE_SERVERS: list[ServerProcess] = []


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique_name(prefix: str = "acc") -> str:
    """A fresh valid owner name: starts with a letter, 5..32 of [a-z0-9-], no '--'."""
    return f"{prefix}-{secrets.token_hex(6)}"


def poll(
    fetch: Callable[[], T],
    done: Callable[[T], bool],
    timeout: float,
    interval: float = 0.05,
    message: str = "condition",
) -> T:
    """Call ``fetch`` until ``done(value)`` holds, and return that value; fail at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = fetch()
        if done(value):
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"{message} not met within {timeout:.1f}s; last value: {value!r}")
        time.sleep(interval)


class ServerStartError(RuntimeError):
    pass


class ServerProcess:
    """The real server as a child process."""

    def __init__(
        self,
        workdir: Path,
        *,
        owner_queue_limit: int | None = None,
        extra_args: Iterable[str] = (),
        env: Mapping[str, str] | None = None,
        port: int | None = None,
    ) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.db_path = workdir / "tasks.db"
        self.log_path = workdir / "server.log"
        self.owner_queue_limit = owner_queue_limit
        self.extra_args = list(extra_args)
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.ready_at_ms = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        cmd = [
            sys.executable, "-m", "tasks_server", "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--db", str(self.db_path),
        ]  # fmt: skip
        if self.owner_queue_limit is not None:
            cmd += ["--owner-queue-limit", str(self.owner_queue_limit)]
        return cmd + self.extra_args

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 30.0) -> ServerProcess:
        if self.running:
            raise RuntimeError("the server is already running")
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"\n===== start #{self.starts}: {' '.join(self.command())}\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                self.command(),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self.env,
                cwd=self.workdir,
            )
        if self not in LIVE_SERVERS:
            LIVE_SERVERS.append(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.kill()
            raise
        self.ready_at_ms = now_ms()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2.0) as client:
            while True:
                assert self.proc is not None
                code = self.proc.poll()
                if code is not None:
                    raise ServerStartError(
                        f"the server exited with code {code} before it was ready\n{self.log_tail()}"
                    )
                try:
                    response = client.get(self.base_url + "/status")
                    if response.status_code == 200 and response.text.strip() == "OK":
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() >= deadline:
                    raise ServerStartError(
                        f"GET /status did not answer 200 OK within {timeout:.0f}s\n"
                        + self.log_tail()
                    )
                time.sleep(0.05)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM, then wait for the exit; returns the exit code (SIGKILL after the timeout)."""
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                raise AssertionError(
                    f"the server did not exit within {timeout:.0f}s of SIGTERM\n{self.log_tail()}"
                ) from None
        return int(self.proc.returncode)

    def kill(self) -> None:
        """SIGKILL (``kill -9``) and reap the process."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    def restart(self, timeout: float = 30.0) -> ServerProcess:
        """Start again on the same database and port (after stop() or kill())."""
        if self.running:
            raise RuntimeError("stop() or kill() the server first")
        return self.start(timeout)

    def close(self) -> None:
        try:
            self.kill()
        finally:
            if self in LIVE_SERVERS:
                LIVE_SERVERS.remove(self)

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no server log)"
        tail = "\n".join(text.splitlines()[-lines:])
        return f"----- tail of {self.log_path} -----\n{tail}"

    def client(self, owner_id: str | None = None, key: str | None = None) -> ApiClient:
        return ApiClient(self.base_url, owner_id=owner_id, key=key)


class ApiClient:
    """A thin client over the HTTP API. Requests are authenticated when credentials are set."""

    def __init__(
        self,
        base_url: str,
        *,
        owner_id: str | None = None,
        key: str | None = None,
        name: str | None = None,
        timeout: float = 15.0,
    ) -> None:
        self.base_url = base_url
        self.owner_id = owner_id
        self.key = key
        self.name = name
        self.http = httpx.Client(base_url=base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- raw requests -----------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        if self.owner_id is None or self.key is None:
            return {}
        return {"Authorization": f"Bearer {self.key}", "X-Tasks-Owner-Id": self.owner_id}

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: bool = True,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        merged: dict[str, str] = self.auth_headers() if auth else {}
        if headers:
            merged.update(headers)
        return self.http.request(method, path, headers=merged, **kwargs)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.request("DELETE", path, **kwargs)

    # -- owners -----------------------------------------------------------------------------

    def register_owner(self, name: str) -> tuple[str, str]:
        response = self.http.post("/v1/owners/register", json={"name": name})
        assert response.status_code == 201, (
            f"register owner {name!r}: {response.status_code} {response.text}"
        )
        data = response.json()
        return str(data["id"]), str(data["key"])

    def new_owner(self, name: str | None = None) -> ApiClient:
        """Register a fresh owner and return a client authenticated as it."""
        name = name or unique_name()
        owner_id, key = self.register_owner(name)
        return ApiClient(self.base_url, owner_id=owner_id, key=key, name=name)

    def owner(self) -> dict[str, Any]:
        response = self.get(f"/v1/owners/{self.name}")
        assert response.status_code == 200, response.text
        return expect_json_object(response)

    # -- tasks ------------------------------------------------------------------------------

    def register_task(self, body: Mapping[str, Any], expected: int = 201) -> dict[str, Any]:
        response = self.post("/v1/queues/register", json=body)
        assert response.status_code == expected, (
            f"register task: expected {expected}, got {response.status_code} {response.text}"
        )
        return expect_json_object(response)

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/queues/{task_id}")
        assert response.status_code == 200, (
            f"GET task {task_id}: {response.status_code} {response.text}"
        )
        return expect_json_object(response)

    def tasks(self, **params: Any) -> list[dict[str, Any]]:
        response = self.get("/v1/queues", params=params)
        assert response.status_code == 200, (
            f"GET /v1/queues {params}: {response.status_code} {response.text}"
        )
        data = response.json()
        assert isinstance(data, list), data
        return data

    def attempts(self, task_id: str) -> list[dict[str, Any]]:
        response = self.get(f"/v1/queues/{task_id}/attempts")
        assert response.status_code == 200, (
            f"attempts {task_id}: {response.status_code} {response.text}"
        )
        data = response.json()
        assert isinstance(data, list), data
        return data

    def task_config(self, task_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/queues/{task_id}/config")
        assert response.status_code == 200, (
            f"config {task_id}: {response.status_code} {response.text}"
        )
        return expect_json_object(response)

    def action(self, task_id: str, action: str) -> httpx.Response:
        """pause / resume / revoke (PATCH) or execute (POST)."""
        method = "POST" if action == "execute" else "PATCH"
        return self.request(method, f"/v1/queues/{task_id}/{action}")

    def pause(self, task_id: str) -> None:
        expect_done(self.action(task_id, "pause"))

    def revoke(self, task_id: str) -> None:
        expect_done(self.action(task_id, "revoke"))

    def execute(self, task_id: str) -> None:
        expect_done(self.action(task_id, "execute"))

    def resume(self, task_id: str) -> dict[str, Any]:
        response = self.action(task_id, "resume")
        assert response.status_code == 200, (
            f"resume {task_id}: {response.status_code} {response.text}"
        )
        return expect_json_object(response)

    def delete_task(self, task_id: str) -> None:
        expect_done(self.delete(f"/v1/queues/{task_id}"))

    def edit(self, task_id: str, patch: Mapping[str, Any]) -> httpx.Response:
        return self.patch(f"/v1/queues/{task_id}", json=patch)

    def wait_for_state(
        self, task_id: str, states: str | Iterable[str], timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll ``GET /v1/queues/{id}`` until the task is in one of ``states``."""
        wanted = {states} if isinstance(states, str) else set(states)
        return poll(
            lambda: self.task(task_id),
            lambda task: task["state"] in wanted,
            timeout=timeout,
            message=f"task {task_id} in {sorted(wanted)}",
        )

    def wait_final(self, task_id: str, timeout: float = 10.0) -> dict[str, Any]:
        return self.wait_for_state(task_id, FINAL_STATES, timeout)


# -- assertions ---------------------------------------------------------------------------


def expect_json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise AssertionError(f"not JSON ({response.status_code}): {response.text[:500]!r}") from exc
    assert isinstance(data, dict), f"expected a JSON object, got {data!r}"
    return data


def expect_envelope(response: httpx.Response, status: int | Iterable[int]) -> dict[str, Any]:
    """Assert the status and the ``{"action", "message"}`` error envelope; return the body."""
    allowed = {status} if isinstance(status, int) else set(status)
    assert response.status_code in allowed, (
        f"expected {sorted(allowed)}, got {response.status_code}: {response.text[:1000]}"
    )
    assert response.headers.get("content-type", "").startswith("application/json"), (
        f"error body is not application/json: {response.headers.get('content-type')!r}"
    )
    data = expect_json_object(response)
    assert set(data) == ENVELOPE_KEYS, f"not an error envelope: {data!r}"
    assert isinstance(data["action"], str) and data["action"], data
    assert isinstance(data["message"], (str, dict)) and data["message"], data
    return data


def expect_done(response: httpx.Response) -> None:
    request = response.request
    assert response.status_code == 200, (
        f"{request.method} {request.url.path}: {response.status_code} {response.text}"
    )
    assert response.json() == {"status": "Done"}, response.text


ACTIONS = {
    400: "Do not retry without fixing the problem",
    401: "The request should not be repeated",
    403: "The request should not be repeated",
    404: "Do not retry without fixing the problem",
    409: "Do not retry without fixing the problem",
    413: "Do not retry without fixing the problem",
    422: "Do not retry without fixing the problem",
}


def expect_error(response: httpx.Response, status: int) -> dict[str, Any]:
    """The envelope with the ``action`` docs/api.md gives for ``status``."""
    data = expect_envelope(response, status)
    if status in ACTIONS:
        assert data["action"] == ACTIONS[status], data
    return data


def error_paths(message: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """The field paths that carry a non-empty ``_errors`` list in a validation error tree."""
    found: set[tuple[str, ...]] = set()
    if isinstance(message, dict):
        errors = message.get("_errors")
        if isinstance(errors, list) and errors:
            found.add(prefix)
        for key, value in message.items():
            if key != "_errors":
                found |= error_paths(value, (*prefix, key))
    return found


def find_values(obj: Any, key: str) -> list[Any]:
    """Every value stored under ``key`` anywhere in a JSON document."""
    found: list[Any] = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == key:
                found.append(v)
            found.extend(find_values(v, key))
    elif isinstance(obj, list):
        for item in obj:
            found.extend(find_values(item, key))
    return found


def task_body(
    url: str,
    method: str = "GET",
    *,
    config: Mapping[str, Any] | None = None,
    metadata: Mapping[str, str] | None = None,
    **http: Any,
) -> dict[str, Any]:
    """A registration body: ``httpRequest`` from ``url``, ``method`` and ``http``."""
    body: dict[str, Any] = {"httpRequest": {"url": url, "method": method, **http}}
    if config is not None:
        body["config"] = dict(config)
    if metadata is not None:
        body["metadata"] = dict(metadata)
    return body
