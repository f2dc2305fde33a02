"""A worker process for the integration tests (run as a script, one JSON object per line).

``worker.py requests SOCKET API_URL PROVIDER NAME FIRST SECOND``
    makes FIRST chat completions through ``CredpoolAuth``, prints ``{"phase": "half", …}``,
    waits for a ``go`` line on stdin, makes SECOND more, prints ``{"phase": "done", …}``.

``worker.py hold SOCKET PROVIDER``
    leases one credential, prints ``{"lease": id, "label": label}`` and holds it until killed
    (or until stdin closes, when it exits without releasing).
"""

from __future__ import annotations

import json
import sys
from typing import Any, Dict, List

import httpx

import credpool


def say(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def requests(socket: str, api_url: str, provider: str, name: str, first: int, second: int) -> None:
    pool = credpool.Client(socket=socket)
    auth = credpool.CredpoolAuth(pool, provider=provider)
    body = {"model": "fake-model", "messages": [{"role": "user", "content": name}]}
    with httpx.Client(auth=auth, timeout=10.0, trust_env=False) as http:

        def run(n: int) -> List[int]:
            statuses = []
            for _ in range(n):
                response = http.post(f"{api_url}/chat/completions", json=body)
                statuses.append(response.status_code)
            return statuses

        say({"phase": "half", "name": name, "statuses": run(first)})
        if sys.stdin.readline().strip() != "go":
            return
        say({"phase": "done", "name": name, "statuses": run(second)})
    pool.close()


def hold(socket: str, provider: str) -> None:
    pool = credpool.Client(socket=socket)
    lease = pool.lease(provider=provider)
    say({"lease": lease.id, "label": lease.label, "entry": lease.entry})
    sys.stdin.read()  # held until killed


def main(argv: List[str]) -> None:
    if argv[0] == "requests":
        socket, api_url, provider, name, first, second = argv[1:7]
        requests(socket, api_url, provider, name, int(first), int(second))
    elif argv[0] == "hold":
        hold(argv[1], argv[2])
    else:
        raise SystemExit(f"unknown worker mode {argv[0]!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
