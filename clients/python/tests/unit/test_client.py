"""The synchronous client against an in-memory data plane: wire format, errors, lease life."""

from __future__ import annotations

import os
import socket as socketlib
import tempfile
import threading
import time
from datetime import datetime, timezone
from typing import Iterator

import httpx
import pytest

import credpool
from credpool import BadRequest, CredpoolError, LeaseExpired, PoolExhausted, ServerUnavailable

from .fakes import FakePool, answer, lease_json

SECRET = "sk-secret-aaaa"


# -- lease ----------------------------------------------------------------------------------


def test_lease_by_provider_sends_the_provider_and_parses_the_lease(
    client: credpool.Client, pool: FakePool
) -> None:
    pool.leases.append(lease_json("0123456789ab", 3, SECRET, label="team", kind="oauth"))
    lease = client.lease(provider="openai")

    assert pool.calls[0].method == "POST"
    assert pool.calls[0].path == "/v1/lease"
    assert pool.calls[0].body == {"provider": "openai"}
    assert pool.calls[0].headers["content-type"] == "application/json"
    assert len(lease.id) == 32
    assert (lease.provider, lease.entry, lease.label, lease.generation, lease.kind) == (
        "openai", "0123456789ab", "team", 3, "oauth",
    )
    assert lease.base_url == "https://api.openai.com/v1"
    assert lease.header_name == "authorization"
    assert lease.header_value == f"Bearer {SECRET}"
    assert lease.headers == {"authorization": f"Bearer {SECRET}"}
    assert lease.expires_at == datetime(2026, 11, 30, 2, 0, 0, tzinfo=timezone.utc)
    assert lease.live


def test_lease_by_url_and_model(client: credpool.Client, pool: FakePool) -> None:
    client.lease(url="https://api.x.ai/v1/chat/completions", model="grok-4")
    assert pool.calls[0].body == {"url": "https://api.x.ai/v1/chat/completions", "model": "grok-4"}


@pytest.mark.parametrize("kwargs", [{}, {"provider": "openai", "url": "https://api.x.ai/v1"}])
def test_lease_wants_exactly_one_of_provider_or_url(client: credpool.Client, kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        client.lease(**kwargs)


def test_a_null_base_url_and_another_header_name(client: credpool.Client, pool: FakePool) -> None:
    pool.leases.append(lease_json(header_name="x-api-key", base_url=None, provider="anthropic"))
    lease = client.lease(provider="anthropic")
    assert lease.base_url is None
    assert lease.headers == {"x-api-key": SECRET}


def test_exhausted_raises_pool_exhausted_with_when_and_why(
    client: credpool.Client, pool: FakePool
) -> None:
    pool.retry_after_header = "7"
    pool.leases.append(
        (503, {"error": {"code": "exhausted", "message": "no available entries",
                         "next_available_at": "2026-11-30T02:00:07.5+00:00",
                         "causes": {"rate_limited": 2, "dead": 1}}})
    )
    with pytest.raises(PoolExhausted) as info:
        client.lease(provider="openai")
    err = info.value
    assert err.next_available_at == datetime(2026, 11, 30, 2, 0, 7, 500000, tzinfo=timezone.utc)
    assert err.causes == {"rate_limited": 2, "dead": 1}
    assert err.retry_after == 7.0
    assert err.code == "exhausted" and err.status == 503
    assert isinstance(err, CredpoolError)
    assert "dead=1" in str(err) and "rate_limited=2" in str(err)


def test_exhausted_with_nothing_coming_back(client: credpool.Client, pool: FakePool) -> None:
    pool.leases.append(
        (503, {"error": {"code": "exhausted", "message": "m", "next_available_at": None,
                         "causes": {"dead": 3}}})
    )
    with pytest.raises(PoolExhausted) as info:
        client.lease(provider="openai")
    assert info.value.next_available_at is None
    assert info.value.retry_after is None


@pytest.mark.parametrize(
    "code", ["invalid_request", "body_too_large", "unknown_provider", "no_provider_for_url"]
)
def test_bad_request_carries_code_and_message(
    client: credpool.Client, pool: FakePool, code: str
) -> None:
    pool.leases.append((400, {"error": {"code": code, "message": "nope"}}))
    with pytest.raises(BadRequest) as info:
        client.lease(provider="openai")
    assert info.value.code == code
    assert info.value.message == "nope"
    assert str(info.value) == f"{code}: nope"


def test_an_unexpected_status_is_a_credpool_error(client: credpool.Client, pool: FakePool) -> None:
    pool.leases.append((500, {"error": {"code": "internal", "message": "boom"}}))
    with pytest.raises(CredpoolError) as info:
        client.lease(provider="openai")
    assert info.value.status == 500 and info.value.code == "internal"


def test_a_malformed_lease_is_a_credpool_error(client: credpool.Client, pool: FakePool) -> None:
    broken = lease_json()
    del broken["header"]
    pool.leases.append(broken)
    with pytest.raises(CredpoolError, match="malformed"):
        client.lease(provider="openai")


# -- report ---------------------------------------------------------------------------------


def provider_response(status: int, url: str = "https://api.openai.com/v1/chat/completions?key=sekrit") -> httpx.Response:
    request = httpx.Request("POST", url)
    return httpx.Response(
        status,
        headers=[("retry-after", "3"), ("x-ratelimit-remaining", "0"), ("x-ratelimit-remaining", "1")],
        text='{"error":{"code":"rate_limit_exceeded"}}',
        request=request,
    )


def test_report_a_success_response_releases(client: credpool.Client, pool: FakePool) -> None:
    lease = client.lease(provider="openai")
    report = client.report(lease, httpx.Response(200, request=httpx.Request("GET", "https://x/")))
    assert pool.reports_sent() == [{"outcome": "success"}]
    assert report.action == "released" and report.lease is None and report.classification is None
    assert not lease.live
    assert pool.live == {}


def test_report_a_failure_sends_status_headers_body_and_url(
    client: credpool.Client, pool: FakePool
) -> None:
    next_lease = lease_json("bbbbbbbbbbbb", 1, "sk-other")
    pool.reports.append(answer("rotate", next_lease, "rate_limited", status=429, retry_after_ms=0))
    lease = client.lease(provider="openai")
    report = client.report(lease, provider_response(429))

    sent = pool.reports_sent()[0]
    assert pool.calls[-1].path == f"/v1/leases/{lease.id}/report"
    assert sent["status"] == 429
    assert ["retry-after", "3"] in sent["headers"]
    # repeated headers travel as repeated pairs
    assert sent["headers"].count(["x-ratelimit-remaining", "0"]) == 1
    assert sent["headers"].count(["x-ratelimit-remaining", "1"]) == 1
    assert sent["body"] == '{"error":{"code":"rate_limit_exceeded"}}'
    # the query (which may hold a key) never travels
    assert sent["url"] == "https://api.openai.com/v1/chat/completions"

    assert report.action == "rotate"
    assert report.classification is not None and report.classification.kind == "rate_limited"
    assert report.classification.status == 429
    assert report.lease is not None and report.lease.entry == "bbbbbbbbbbbb" and report.lease.live
    assert not lease.live  # consumed by the report
    client.release(report.lease)
    assert pool.live == {}


def test_report_a_streamed_failure_reads_its_body(client: credpool.Client, pool: FakePool) -> None:
    lease = client.lease(provider="openai")
    response = httpx.Response(
        403,
        stream=httpx.ByteStream(b'{"code":"unauthenticated:bad-credentials"}'),
        request=httpx.Request("POST", "https://api.x.ai/v1/chat/completions"),
    )
    client.report(lease, response)
    assert pool.reports_sent()[0]["body"] == '{"code":"unauthenticated:bad-credentials"}'


def test_report_a_transport_failure(client: credpool.Client, pool: FakePool) -> None:
    lease = client.lease(provider="openai")
    exc = httpx.ConnectError(
        "connection reset by peer", request=httpx.Request("POST", "https://api.x.ai/v1/chat?x=1")
    )
    client.report(lease, exc)
    assert pool.reports_sent() == [
        {"error": "ConnectError: connection reset by peer", "url": "https://api.x.ai/v1/chat"}
    ]


def test_report_a_plain_exception_has_no_url(client: credpool.Client, pool: FakePool) -> None:
    lease = client.lease(provider="openai")
    client.report(lease, TimeoutError())
    assert pool.reports_sent() == [{"error": "TimeoutError"}]


def test_a_long_body_is_cut(client: credpool.Client, pool: FakePool) -> None:
    lease = client.lease(provider="openai")
    response = httpx.Response(500, text="x" * 200_000, request=httpx.Request("GET", "https://a/"))
    client.report(lease, response)
    assert len(pool.reports_sent()[0]["body"]) == 64 * 1024


def test_report_answer_fields(client: credpool.Client, pool: FakePool) -> None:
    pool.reports.append(
        {"classification": {"kind": "rate_limited", "status": 429, "reason": "rate_limit_exceeded",
                            "reset_at": "2026-11-30T02:00:30Z"},
         "action": "wait", "lease": None, "retry_after_ms": 0,
         "next_available_at": "2026-11-30T02:00:30.123456789Z"}
    )
    lease = client.lease(provider="openai")
    report = client.report(lease, provider_response(429))
    assert report.action == "wait" and report.lease is None
    assert report.classification is not None
    assert report.classification.reason == "rate_limit_exceeded"
    assert report.classification.reset_at == datetime(2026, 11, 30, 2, 0, 30, tzinfo=timezone.utc)
    assert report.next_available_at == datetime(2026, 11, 30, 2, 0, 30, 123456, tzinfo=timezone.utc)


def test_report_of_an_unknown_lease_raises_lease_expired(
    client: credpool.Client, pool: FakePool
) -> None:
    lease = client.lease(provider="openai")
    pool.live.clear()  # the server forgot it (TTL)
    with pytest.raises(LeaseExpired) as info:
        client.report(lease, provider_response(403))
    assert info.value.lease_id == lease.id
    assert not lease.live
    client.release(lease)  # no-op: nothing is sent
    assert [m for m, _ in pool.paths()].count("DELETE") == 0


def test_report_of_a_lease_already_reported_is_refused_locally(
    client: credpool.Client, pool: FakePool
) -> None:
    lease = client.lease(provider="openai")
    client.report_success(lease)
    before = len(pool.calls)
    with pytest.raises(CredpoolError, match="already released or reported"):
        client.report(lease, provider_response(403))
    assert len(pool.calls) == before


# -- release and the context manager --------------------------------------------------------


def test_release_deletes_once(client: credpool.Client, pool: FakePool) -> None:
    lease = client.lease(provider="openai")
    client.release(lease)
    client.release(lease)
    lease.release()
    assert pool.paths().count(("DELETE", f"/v1/leases/{lease.id}")) == 1
    assert not lease.live and pool.live == {}


def test_release_of_an_unknown_lease_raises_lease_expired(
    client: credpool.Client, pool: FakePool
) -> None:
    lease = client.lease(provider="openai")
    pool.live.clear()
    with pytest.raises(LeaseExpired):
        client.release(lease)
    client.release(lease)  # consumed now: a no-op


def test_context_manager_releases_on_exit(client: credpool.Client, pool: FakePool) -> None:
    with client.lease(provider="openai") as cred:
        assert cred.live
        assert cred.header_value == f"Bearer {SECRET}"
    assert not cred.live
    assert pool.released() == [cred.id]


def test_context_manager_releases_when_the_body_raises(
    client: credpool.Client, pool: FakePool
) -> None:
    with pytest.raises(KeyError):
        with client.lease(provider="openai") as cred:
            raise KeyError("boom")
    assert pool.released() == [cred.id]


def test_context_manager_after_a_report_does_not_release_again(
    client: credpool.Client, pool: FakePool
) -> None:
    pool.reports.append(answer("give_up", kind="other", status=400))
    with client.lease(provider="openai") as cred:
        report = client.report(cred, provider_response(400))
        assert report.action == "give_up"
    assert pool.released() == []


def test_context_manager_swallows_an_expired_lease(client: credpool.Client, pool: FakePool) -> None:
    with client.lease(provider="openai") as cred:
        pool.live.clear()  # the TTL passed during the body
    assert not cred.live


def test_context_manager_keeps_the_bodys_exception_when_the_server_is_gone(
    pool: FakePool,
) -> None:
    down = {"now": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if down["now"]:
            raise httpx.ConnectError("refused", request=request)
        return pool.handler(request)

    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(handler)) as c:
        with pytest.raises(ValueError):
            with c.lease(provider="openai"):
                down["now"] = True
                raise ValueError("the body's own error")
        # Without an exception in flight, the exit's own error is raised.
        down["now"] = False
        with pytest.raises(ServerUnavailable):
            with c.lease(provider="openai"):
                down["now"] = True


def test_the_report_answers_lease_is_a_context_manager_too(
    client: credpool.Client, pool: FakePool
) -> None:
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "sk-new")))
    lease = client.lease(provider="xai-oauth")
    report = client.report(lease, provider_response(403))
    assert report.lease is not None
    with report.lease as again:
        assert again.generation == 2
    assert pool.live == {}


# -- transport, timeouts, health ------------------------------------------------------------


def test_connect_error_is_server_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(refuse)) as c:
        with pytest.raises(ServerUnavailable, match="cannot connect"):
            c.lease(provider="openai")


def test_a_dropped_connection_is_server_unavailable() -> None:
    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(drop)) as c:
        with pytest.raises(ServerUnavailable, match="connection failed"):
            c.lease(provider="openai")


def test_a_missing_socket_is_server_unavailable_at_once(tmp_path: "os.PathLike[str]") -> None:
    path = os.path.join(str(tmp_path), "absent.sock")
    start = time.monotonic()
    with credpool.Client(socket=path) as c:
        with pytest.raises(ServerUnavailable):
            c.lease(provider="openai")
    assert time.monotonic() - start < 1.0


@pytest.fixture
def silent_socket() -> Iterator[str]:
    """A Unix socket that accepts connections and never answers."""
    directory = tempfile.mkdtemp(prefix="cp-")  # short: sun_path holds ~100 bytes
    path = os.path.join(directory, "s.sock")
    server = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_STREAM)
    server.bind(path)
    server.listen(8)
    accepted = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        stop.set()
        thread.join(2)
        for conn in accepted:
            conn.close()
        server.close()
        os.unlink(path)
        os.rmdir(directory)


def test_a_server_that_never_answers_times_out(silent_socket: str) -> None:
    start = time.monotonic()
    with credpool.Client(socket=silent_socket, timeout=0.3) as c:
        with pytest.raises(ServerUnavailable, match="timed out"):
            c.lease(provider="openai")
    assert time.monotonic() - start < 2.0


def test_health(client: credpool.Client) -> None:
    assert client.health() is True


def test_token_is_sent_as_a_bearer_and_never_shown(pool: FakePool, tmp_path: "os.PathLike[str]") -> None:
    token_file = os.path.join(str(tmp_path), "lease.token")
    with open(token_file, "w") as f:
        f.write("tok-0123456789abcdef\n")
    with credpool.Client(
        url="http://127.0.0.1:7879", token_file=token_file, transport=httpx.MockTransport(pool.handler)
    ) as c:
        c.health()
        assert pool.calls[0].headers["authorization"] == "Bearer tok-0123456789abcdef"
        assert "tok-" not in repr(c)
    with credpool.Client(
        url="http://127.0.0.1:7879", token="tok-inline", transport=httpx.MockTransport(pool.handler)
    ) as c:
        c.health()
        assert pool.calls[1].headers["authorization"] == "Bearer tok-inline"


def test_a_socket_client_sends_no_authorization(client: credpool.Client, pool: FakePool) -> None:
    with credpool.Client(socket="/nonexistent.sock", transport=httpx.MockTransport(pool.handler)) as c:
        c.health()
    assert "authorization" not in pool.calls[0].headers
    assert repr(c) == "Client(unix:/nonexistent.sock)"


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"socket": "/a.sock", "url": "http://127.0.0.1:1"},
        {"socket": "/a.sock", "token": "t"},
        {"url": "http://127.0.0.1:1", "token": "t", "token_file": "/f"},
        {"url": "unix:/a.sock"},
        {"socket": "/a.sock", "timeout": 0},
    ],
)
def test_constructor_arguments_are_checked(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        credpool.Client(**kwargs)


def test_an_empty_token_file_is_refused(tmp_path: "os.PathLike[str]") -> None:
    token_file = os.path.join(str(tmp_path), "empty")
    open(token_file, "w").close()
    with pytest.raises(ValueError, match="empty"):
        credpool.Client(url="http://127.0.0.1:1", token_file=token_file)


# -- secrets never shown --------------------------------------------------------------------


def test_repr_and_str_never_show_the_secret(client: credpool.Client, pool: FakePool) -> None:
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "sk-second-secret")))
    lease = client.lease(provider="openai")
    shown = [repr(lease), str(lease), f"{lease}", repr([lease]), repr({"l": lease})]
    report = client.report(lease, provider_response(429))
    shown += [repr(report), str(report)]
    for text in shown:
        assert SECRET not in text
        assert "sk-second-secret" not in text
        assert "Bearer" not in text
    assert "<redacted>" in repr(lease)
    assert lease.id in repr(lease) and "'main'" in repr(lease)
    assert report.lease is not None
    client.release(report.lease)


def test_leases_compare_by_id(client: credpool.Client) -> None:
    a = client.lease(provider="openai")
    b = client.lease(provider="openai")
    assert a != b and a == a and len({a, b, a}) == 2
    client.release(a)
    client.release(b)
