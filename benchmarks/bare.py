"""The do-nothing endpoint: answers every request 200 with an empty body.

Usage: python benchmarks/bare.py --port P

It measures what the load generator can push through HTTP on this machine when the server side
costs next to nothing (ceiling (a)).
"""

from __future__ import annotations

import argparse

from miniserver import OK_EMPTY, serve


def _answer(_url: bytes, _headers: dict[bytes, bytes]) -> bytes:
    return OK_EMPTY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve("127.0.0.1", args.port, _answer)


if __name__ == "__main__":
    main()
