"""The delivery sink: records every request it receives and answers 200 with an empty body.

Usage: python benchmarks/sink.py --port P --out DIR

For each request it keeps (receive time in ms since the epoch, the `X-Due-At` header, the
`X-Tasks-Queue-Id` header). Control routes, never recorded:

- `GET /_sink/count`: how many requests were recorded since the last reset;
- `GET /_sink/connections`: connections accepted since the sink started, less one per control
  request (control clients send one request per connection, as urllib does);
- `GET /_sink/dump?name=NAME`: writes the records to `DIR/NAME.tsv`, clears them, answers the
  number written;
- `GET /_sink/reset`: clears the records.

The dump is tab-separated, one line per request: `recv_ms  due_ms  task_id` (`due_ms` is -1 when
the header was missing or not an integer).
"""

from __future__ import annotations

import argparse
import re
import time
from array import array
from dataclasses import dataclass
from pathlib import Path

from miniserver import OK_EMPTY, serve, text_response

DUE_HEADER = b"x-due-at"
ID_HEADER = b"x-tasks-queue-id"
_CONTROL = b"/_sink/"
_NAME = re.compile(r"[a-z0-9_-]{1,64}")


class Recorder:
    """Request records kept in compact arrays until dumped."""

    def __init__(self, out_dir: Path) -> None:
        self._out_dir = out_dir
        self._recv_ms = array("d")
        self._due_ms = array("q")
        self._ids: list[bytes] = []
        self._connections = 0
        self._control_requests = 0

    def connected(self) -> None:
        self._connections += 1

    def handle(self, url: bytes, headers: dict[bytes, bytes]) -> bytes:
        if url.startswith(_CONTROL):
            return self._control(url)
        self._recv_ms.append(time.time() * 1000.0)
        self._due_ms.append(_to_int(headers.get(DUE_HEADER)))
        self._ids.append(headers.get(ID_HEADER, b""))
        return OK_EMPTY

    def _control(self, url: bytes) -> bytes:
        self._control_requests += 1
        path, _, query = url.decode("latin-1").partition("?")
        if path == "/_sink/count":
            return text_response(str(len(self._ids)))
        if path == "/_sink/connections":
            return text_response(str(self._connections - self._control_requests))
        if path == "/_sink/reset":
            self._reset()
            return text_response("0")
        if path == "/_sink/dump":
            name = query.removeprefix("name=")
            if not _NAME.fullmatch(name):
                return text_response("bad name", "400 Bad Request")
            return text_response(str(self._dump(self._out_dir / f"{name}.tsv")))
        return text_response("no such control route", "404 Not Found")

    def _dump(self, path: Path) -> int:
        lines = [
            f"{recv:.3f}\t{due}\t{task_id.decode('latin-1')}\n"
            for recv, due, task_id in zip(self._recv_ms, self._due_ms, self._ids, strict=True)
        ]
        path.write_text("".join(lines))
        self._reset()
        return len(lines)

    def _reset(self) -> None:
        self._recv_ms = array("d")
        self._due_ms = array("q")
        self._ids = []


def _to_int(value: bytes | None) -> int:
    if value is None:
        return -1
    try:
        return int(value)
    except ValueError:
        return -1


@dataclass(frozen=True)
class Records:
    """A sink dump read back: parallel lists, in arrival order."""

    recv_ms: list[float]
    due_ms: list[int]
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def read_records(path: Path) -> Records:
    """Read a dump written by `GET /_sink/dump`."""
    recv: list[float] = []
    due: list[int] = []
    ids: list[str] = []
    with path.open() as fh:
        for line in fh:
            a, b, c = line.rstrip("\n").split("\t")
            recv.append(float(a))
            due.append(int(b))
            ids.append(c)
    return Records(recv, due, ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="directory for dumps")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    recorder = Recorder(args.out)
    wanted = frozenset({DUE_HEADER, ID_HEADER})
    serve("127.0.0.1", args.port, recorder.handle, wanted, recorder.connected)


if __name__ == "__main__":
    main()
