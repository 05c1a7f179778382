"""Single HTTP calls (urllib, no proxy) and the Tasks Server request bodies the benchmarks send."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass

import orjson

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
DAY_MS = 86_400_000


def now_ms() -> int:
    """Wall-clock milliseconds since the epoch (shared by every process on this machine)."""
    return int(time.time() * 1000)


def call(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, bytes]:
    """One request; answers (status, body), also for 4xx/5xx."""
    if not url.startswith("http://127.0.0.1:"):
        raise ValueError(f"refusing non-local URL {url!r}")
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=timeout_s) as response:
            return int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@dataclass(frozen=True)
class Owner:
    """A registered owner and its secret key."""

    base_url: str
    name: str
    id: str
    key: str

    def header_dict(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self.key}",
            "X-Tasks-Owner-Id": self.id,
            "Content-Type": "application/json",
        }

    def curl_headers(self) -> list[str]:
        return [f"{k}: {v}" for k, v in self.header_dict().items()]

    @property
    def register_url(self) -> str:
        return f"{self.base_url}/v1/queues/register"

    def get(self, path: str) -> tuple[int, object]:
        status, body = call("GET", f"{self.base_url}{path}", headers=self.header_dict())
        return status, orjson.loads(body) if body else None

    def tasks_in_queue(self) -> int:
        status, info = self.get(f"/v1/owners/{self.name}")
        if status != 200 or not isinstance(info, dict):
            raise RuntimeError(f"GET /v1/owners/{self.name} answered {status}: {info!r}")
        return int(info["tasksInQueue"])


def register_owner(base_url: str, name: str = "bench-owner") -> Owner:
    body = orjson.dumps({"name": name})
    status, answer = call(
        "POST", f"{base_url}/v1/owners/register", body, {"Content-Type": "application/json"}
    )
    if status != 201:
        raise RuntimeError(f"owner registration answered {status}: {answer[:300]!r}")
    data = orjson.loads(answer)
    return Owner(base_url=base_url, name=name, id=str(data["id"]), key=str(data["key"]))


_TASK = (
    '{"httpRequest":{"url":"%s","method":"POST","headers":{"X-Due-At":"%d"}},'
    '"config":{"executeAt":%d}}'
)


def task_body(target_url: str, execute_at_ms: int) -> bytes:
    """A registration body: POST `target_url` at `execute_at_ms`, which is also sent as X-Due-At."""
    return (_TASK % (target_url, execute_at_ms, execute_at_ms)).encode()


def task_ids(bodies: dict[int, bytes]) -> list[str]:
    """The ids from registration answers (201 bodies), in request order."""
    ids: list[str] = []
    for index in sorted(bodies):
        try:
            ids.append(str(orjson.loads(bodies[index])["id"]))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            continue
    return ids
