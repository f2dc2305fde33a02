"""credpool from Python: lease + release over the Unix socket, measured in a fresh process.

Run by bench.py as ``python py_credpool.py '<json args>'``; prints one JSON object.

``{"mode": "single", "socket": ..., "pairs": N, "warmup": W}`` measures, one after the other,
each with its own persistent connection:

- ``client``: ``credpool.Client.lease(provider="openai")`` + ``release(lease)`` (the package);
- ``async_client``: the same with ``credpool.AsyncClient`` in an asyncio loop;
- ``httpx``: the same two requests with a bare ``httpx.Client`` over the socket, configured as
  the package configures its own, with ``json.loads`` of the lease — what the package costs
  over its HTTP library;
- ``stdlib``: the same two requests with the standard library's ``http.client`` on an
  ``AF_UNIX`` socket (a leaner framing the package could use without a dependency);
- ``raw``: the same two requests written by hand on an ``AF_UNIX`` socket, keep-alive, with
  ``json.loads`` of the lease (the floor: what any Python client must pay);
- ``raw_health``: one ``GET /v1/health`` by hand (a single round trip: server + kernel).

``{"mode": "multi", "socket": ..., "procs": P, "window_s": T, "warmup": W, "kind": "client"|"raw"}``
runs P processes at once (fork), each with its own client, for T seconds after a barrier;
per-pair latency over all of them and the total pairs per second.
"""

from __future__ import annotations

import asyncio
import gc
import json
import multiprocessing
import os
import socket
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stats import summarize, time_loop  # noqa: E402

PROVIDER = "openai"
LEASE_BODY = b'{"provider":"openai"}'


# -- the raw floor --------------------------------------------------------------------------


class RawConnection:
    """HTTP/1.1 by hand over one keep-alive ``AF_UNIX`` connection (content-length answers)."""

    LEASE = (
        b"POST /v1/lease HTTP/1.1\r\nhost: credpool\r\ncontent-type: application/json\r\n"
        b"content-length: %d\r\n\r\n" % len(LEASE_BODY)
    ) + LEASE_BODY
    HEALTH = b"GET /v1/health HTTP/1.1\r\nhost: credpool\r\n\r\n"

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.buf = b""

    def call(self, request: bytes) -> bytes:
        """Send one request; the body of its 200 answer."""
        sock = self.sock
        sock.sendall(request)
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        while end < 0:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("credpool closed the connection")
            buf += chunk
            end = buf.find(b"\r\n\r\n")
        head = buf[:end].lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:
            raise RuntimeError("an answer without content-length")
        eol = head.find(b"\r\n", at + 2)
        length = int(head[at + 17 : eol if eol >= 0 else len(head)])
        body_end = end + 4 + length
        while len(buf) < body_end:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("credpool closed the connection")
            buf += chunk
        if head[9:12] != b"200":
            raise RuntimeError(f"credpool answered {head[:12]!r}: {buf[end + 4:body_end][:200]!r}")
        self.buf = buf[body_end:]
        return buf[end + 4 : body_end]

    def pair(self) -> None:
        lease_id = json.loads(self.call(self.LEASE))["lease"]["id"]
        self.call(b"DELETE /v1/leases/%s HTTP/1.1\r\nhost: credpool\r\n\r\n" % lease_id.encode())

    def health(self) -> None:
        self.call(self.HEALTH)

    def close(self) -> None:
        self.sock.close()


# -- the three clients' pairs ---------------------------------------------------------------


def client_pair(sock_path: str) -> Tuple[Callable[[], None], Callable[[], None]]:
    import credpool

    client = credpool.Client(socket=sock_path)

    def pair() -> None:
        client.release(client.lease(provider=PROVIDER))

    return pair, client.close


def httpx_pair(sock_path: str) -> Tuple[Callable[[], None], Callable[[], None]]:
    import httpx

    http = httpx.Client(
        base_url="http://credpool",
        headers={"accept": "application/json", "user-agent": "credpool-bench"},
        transport=httpx.HTTPTransport(uds=sock_path),
        timeout=5.0,
        trust_env=False,
    )
    headers = {"content-type": "application/json"}

    def pair() -> None:
        r = http.post("/v1/lease", content=LEASE_BODY, headers=headers)
        lease_id = json.loads(r.content)["lease"]["id"]
        r = http.delete(f"/v1/leases/{lease_id}")
        if r.status_code != 200:
            raise RuntimeError(f"release answered {r.status_code}")

    return pair, http.close


def stdlib_pair(sock_path: str) -> Tuple[Callable[[], None], Callable[[], None]]:
    import http.client

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(sock_path)

    conn = UnixConnection("credpool", timeout=5.0)
    headers = {"content-type": "application/json"}

    def pair() -> None:
        conn.request("POST", "/v1/lease", body=LEASE_BODY, headers=headers)
        lease_id = json.loads(conn.getresponse().read())["lease"]["id"]
        conn.request("DELETE", f"/v1/leases/{lease_id}")
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"release answered {r.status}")

    return pair, conn.close


def raw_pair(sock_path: str) -> Tuple[Callable[[], None], Callable[[], None]]:
    raw = RawConnection(sock_path)
    return raw.pair, raw.close


def measure(make: Callable[[str], Tuple[Callable[[], None], Callable[[], None]]], sock_path: str,
            pairs: int, warmup: int) -> Dict[str, Any]:
    op, close = make(sock_path)
    try:
        for _ in range(warmup):
            op()
        gc.collect()
        return time_loop(op, pairs)
    finally:
        close()


async def measure_async(sock_path: str, pairs: int, warmup: int) -> Dict[str, Any]:
    import credpool

    client = credpool.AsyncClient(socket=sock_path)
    try:
        for _ in range(warmup):
            await client.release(await client.lease(provider=PROVIDER))
        gc.collect()
        ns: List[int] = []
        clock = time.perf_counter_ns
        start = clock()
        for _ in range(pairs):
            t0 = clock()
            await client.release(await client.lease(provider=PROVIDER))
            ns.append(clock() - t0)
        return summarize(ns, (clock() - start) / 1e9)
    finally:
        await client.aclose()


def single(args: Dict[str, Any]) -> Dict[str, Any]:
    path, pairs, warmup = args["socket"], int(args["pairs"]), int(args["warmup"])
    out: Dict[str, Any] = {}
    out["client"] = measure(client_pair, path, pairs, warmup)
    out["async_client"] = asyncio.run(measure_async(path, pairs, warmup))
    out["httpx"] = measure(httpx_pair, path, pairs, warmup)
    out["stdlib"] = measure(stdlib_pair, path, pairs, warmup)
    out["raw"] = measure(raw_pair, path, pairs, warmup)
    raw = RawConnection(path)
    try:
        for _ in range(warmup):
            raw.health()
        gc.collect()
        out["raw_health"] = time_loop(raw.health, pairs)
    finally:
        raw.close()
    return out


# -- P processes at once --------------------------------------------------------------------


def _child(kind: str, sock_path: str, window_s: float, warmup: int, barrier: Any, results: Any) -> None:
    from services import die_with_parent

    die_with_parent()
    try:
        op, close = (client_pair if kind == "client" else raw_pair)(sock_path)
        for _ in range(warmup):
            op()
        gc.collect()
        barrier.wait(timeout=60)
        ns: List[int] = []
        clock = time.perf_counter_ns
        start = clock()
        stop_at = start + int(window_s * 1e9)
        t1 = start
        while t1 < stop_at:
            t0 = clock()
            op()
            t1 = clock()
            ns.append(t1 - t0)
        close()
        results.put(("ok", ns, (t1 - start) / 1e9))
    except BaseException as err:  # reported to the parent, which fails the measurement
        results.put(("error", f"{type(err).__name__}: {err}", 0.0))
        barrier.abort()


def multi(args: Dict[str, Any]) -> Dict[str, Any]:
    procs, window_s = int(args["procs"]), float(args["window_s"])
    ctx = multiprocessing.get_context("fork")  # this process has no threads: fork is safe
    barrier = ctx.Barrier(procs)
    results = ctx.Queue()
    children = [
        ctx.Process(
            target=_child,
            args=(args["kind"], args["socket"], window_s, int(args["warmup"]), barrier, results),
            daemon=True,
        )
        for _ in range(procs)
    ]
    for child in children:
        child.start()
    all_ns: List[int] = []
    elapsed: List[float] = []
    errors: List[str] = []
    deadline = time.monotonic() + window_s + 120
    try:
        for _ in children:
            status, payload, seconds = results.get(timeout=max(1.0, deadline - time.monotonic()))
            if status == "ok":
                all_ns.extend(payload)
                elapsed.append(seconds)
            else:
                errors.append(payload)
    finally:
        for child in children:
            child.join(timeout=10)
            if child.is_alive():
                child.kill()
                child.join()
    if errors:
        raise RuntimeError("; ".join(errors))
    out = summarize(all_ns, max(elapsed))
    out["procs"] = procs
    out["window_s"] = window_s
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    out = single(args) if args["mode"] == "single" else multi(args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
