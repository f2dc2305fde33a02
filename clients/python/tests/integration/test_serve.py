"""The Python client against a real `credpool serve` and `credpool fake-provider`."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

import httpx
import pytest

import credpool
from credpool import LeaseExpired, PoolExhausted, ServerUnavailable

from .conftest import Stack
from .harness import wait_until

MakeStack = Callable[..., Stack]
WORKERS = ("title", "compression", "vision")


def chat_with(stack: Stack, lease: credpool.Lease) -> httpx.Response:
    """One provider request made by hand with ``lease``'s header."""
    return httpx.post(
        f"{stack.fake.api_url}/chat/completions",
        headers=lease.headers,
        json={"model": "fake-model", "messages": []},
        timeout=10.0,
        trust_env=False,
    )


# a. the seed scenario, across processes ----------------------------------------------------


def test_three_worker_processes_share_one_grant_through_an_expiry(make_stack: MakeStack) -> None:
    stack = make_stack(grants=["shared"])
    stack.start([stack.xai()])
    stack.add_grant("shared")
    baseline = stack.fake.stats()

    workers = [
        stack.worker("requests", stack.socket, stack.fake.api_url, "xai-oauth", name, "10", "10")
        for name in WORKERS
    ]
    for worker, name in zip(workers, WORKERS):
        half = worker.read(60, f"{name}'s first ten requests")
        assert half["statuses"] == [200] * 10, half
    assert stack.fake.stats()["token_requests"] == baseline["token_requests"]

    stack.fake.expire_access_tokens()  # midway: every token issued so far is dead
    for worker in workers:
        worker.send("go")
    for worker, name in zip(workers, WORKERS):
        done = worker.read(60, f"{name}'s last ten requests")
        assert done["statuses"] == [200] * 10, done
        worker.close()

    stats = stack.fake.stats()
    assert stats["token_requests"] == baseline["token_requests"] + 1, stats
    assert stats["refreshes"] == baseline["refreshes"] + 1, stats
    assert stats["reuse_detections"] == 0, stats
    # 60 answered requests, plus one 403 for each worker that met the dead token (1 to 3)
    assert 61 <= stats["api_requests"] <= 63, stats
    assert stack.leases_held("xai-oauth") == 0


def test_a_grant_seeded_from_a_refresh_token_alone_is_fetched_once(make_stack: MakeStack) -> None:
    stack = make_stack(grants=["main"])
    stack.start([stack.xai([{"label": "main", "refresh_token": stack.fake.refresh_token("main")}])])
    http = stack.http("xai-oauth")
    assert [stack.chat(http).status_code for _ in range(5)] == [200] * 5
    stats = stack.fake.stats()
    assert stats["token_requests"] == 1 and stats["reuse_detections"] == 0, stats


# b. rotation on a 429 -----------------------------------------------------------------------


def test_a_rate_limited_key_rotates_to_the_second(make_stack: MakeStack) -> None:
    stack = make_stack(keys=["key-one", "key-two"])
    stack.start([stack.openai(["key-one", "key-two"])])
    stack.fake.api_key_mode("key-one", "rate_limited", retry_after_s=30)

    client = stack.client()
    http = stack.http("openai", client)
    statuses = [stack.chat(http).status_code for _ in range(10)]

    assert statuses == [200] * 10
    # one 429 on the first key, then every request on the second
    assert stack.fake.stats()["api_requests"] == 11
    with client.lease(provider="openai") as lease:
        assert lease.label == "k2"
    assert stack.leases_held("openai") == 0


# c. an exhausted pool -----------------------------------------------------------------------


def test_every_key_rate_limited_exhausts_the_pool(make_stack: MakeStack) -> None:
    stack = make_stack(keys=["key-one", "key-two"])
    stack.start([stack.openai(["key-one", "key-two"])])
    for key in ("key-one", "key-two"):
        stack.fake.api_key_mode(key, "rate_limited", retry_after_s=30)
    client = stack.client()
    http = stack.http("openai", client)

    # Running out during a request: the caller gets the provider's last 429, as sent.
    response = stack.chat(http)
    assert response.status_code == 429
    assert response.headers.get("retry-after") == "30"
    assert [r.status_code for r in response.history] == [429]  # k1, then k2
    assert stack.fake.stats()["api_requests"] == 2

    # Nothing left before a request: PoolExhausted, saying when and why.
    with pytest.raises(PoolExhausted) as info:
        client.lease(provider="openai")
    err = info.value
    assert err.next_available_at is not None
    wait = (err.next_available_at - datetime.now(timezone.utc)).total_seconds()
    assert 10 < wait <= 31, wait
    assert err.causes == {"rate_limited": 2}, err.causes
    assert err.retry_after is not None and err.retry_after > 0
    with pytest.raises(PoolExhausted):
        stack.chat(http)
    assert stack.fake.stats()["api_requests"] == 2  # nothing more reached the provider
    assert stack.leases_held("openai") == 0


# d. a stale report --------------------------------------------------------------------------


def test_a_stale_report_gets_the_current_token_without_a_token_request(make_stack: MakeStack) -> None:
    stack = make_stack(grants=["shared"])
    stack.start([stack.xai()])
    stack.add_grant("shared")
    client = stack.client()
    first = client.lease(provider="xai-oauth")
    second = client.lease(provider="xai-oauth")  # two workers on one grant's token
    assert (first.entry, first.generation) == (second.entry, second.generation)

    stack.fake.expire_access_tokens()
    baseline = stack.fake.stats()

    refreshed = client.report(first, chat_with(stack, first))
    assert refreshed.action == "retry"
    assert refreshed.classification is not None
    assert refreshed.classification.kind == "auth_expired"
    assert refreshed.lease is not None and refreshed.lease.generation > first.generation
    assert stack.fake.stats()["token_requests"] == baseline["token_requests"] + 1

    # The older lease reports the same 403 after the refresh: the current token, no refresh.
    stale = client.report(second, chat_with(stack, second))
    assert stale.action == "retry"
    assert stale.lease is not None
    assert stale.lease.generation == refreshed.lease.generation
    assert stale.lease.header_value == refreshed.lease.header_value
    stats = stack.fake.stats()
    assert stats["token_requests"] == baseline["token_requests"] + 1, stats
    assert stats["reuse_detections"] == 0

    assert chat_with(stack, stale.lease).status_code == 200
    client.release(refreshed.lease)
    client.report(stale.lease, httpx.Response(200))
    assert stack.leases_held("xai-oauth") == 0


# e. a lease whose holder was killed ---------------------------------------------------------


def test_a_killed_holders_lease_expires_and_its_entry_comes_back(make_stack: MakeStack) -> None:
    stack = make_stack(keys=["key-one", "key-two"])
    stack.start([stack.openai(["key-one", "key-two"])], lease_ttl_s=1)
    client = stack.client()

    holder = stack.worker("hold", stack.socket, "openai")
    held = holder.read(30, "the holder's lease")
    assert held["label"] == "k1"
    # k1 is at its lease cap (1): the next lease goes to k2
    with client.lease(provider="openai") as lease:
        assert lease.label == "k2"

    holder.kill()  # SIGKILL: the lease is never released nor reported
    started = time.monotonic()

    def k1_again() -> bool:
        with client.lease(provider="openai") as lease:
            return lease.label == "k1"

    wait_until(k1_again, timeout=10, what="the dead holder's lease to expire", every=0.1)
    assert time.monotonic() - started < 5  # TTL 1 s, the reaper every second
    assert stack.leases_held("openai") == 0

    # Our own lease outliving its TTL: the server still knows it (a tombstone), so a late
    # report is answered, not refused.
    late = client.lease(provider="openai")
    wait_until(lambda: stack.leases_held("openai") == 0, timeout=10, what="the late lease to expire")
    assert client.report(late, httpx.Response(200)).action == "released"


# f. the server killed -----------------------------------------------------------------------


def test_a_killed_server_is_unavailable_at_once_and_the_client_recovers(make_stack: MakeStack) -> None:
    stack = make_stack(keys=["key-one"])
    serve = stack.start([stack.openai(["key-one"])])
    client = stack.client(timeout=5.0)
    http = stack.http("openai", client)
    assert stack.chat(http).status_code == 200  # the connection is open
    held = client.lease(provider="openai")

    serve.kill()  # SIGKILL

    for call in (
        lambda: client.lease(provider="openai"),
        lambda: client.release(held),
        lambda: stack.chat(http),
    ):
        started = time.monotonic()
        with pytest.raises(ServerUnavailable):
            call()
        assert time.monotonic() - started < 2.0

    # The same client works again once the service is back (same data dir, same socket).
    serve.start()
    assert stack.chat(http).status_code == 200
    with client.lease(provider="openai") as lease:
        assert lease.label == "k1"
    # A lease of the killed service is unknown to the new one.
    assert held.live
    with pytest.raises(LeaseExpired):
        client.release(held)
    assert not held.live
    client.release(held)  # consumed now: a no-op


# g. the OpenAI SDK --------------------------------------------------------------------------


def test_the_openai_sdk_through_an_expiry(make_stack: MakeStack) -> None:
    openai = pytest.importorskip("openai")
    stack = make_stack(grants=["sdk"])
    stack.start([stack.xai()])
    stack.add_grant("sdk")
    http_client = stack.http("xai-oauth")
    sdk = openai.OpenAI(
        base_url=stack.fake.api_url, api_key="unused", http_client=http_client, max_retries=0
    )
    messages = [{"role": "user", "content": "hi"}]

    completion = sdk.chat.completions.create(model="fake-model", messages=messages)
    assert completion.choices[0].message.content == "ok"
    baseline = stack.fake.stats()

    stack.fake.expire_access_tokens()
    completion = sdk.chat.completions.create(model="fake-model", messages=messages)
    assert completion.choices[0].message.content == "ok"

    stats = stack.fake.stats()
    assert stats["token_requests"] == baseline["token_requests"] + 1, stats
    assert stats["api_requests"] == baseline["api_requests"] + 2, stats  # the 403, the retry
    assert stats["reuse_detections"] == 0
    sdk.close()
    assert stack.leases_held("xai-oauth") == 0


# by URL, over TCP ---------------------------------------------------------------------------


def test_leasing_by_the_request_url(make_stack: MakeStack) -> None:
    stack = make_stack(grants=["main"])
    stack.start([stack.xai()])
    stack.add_grant("main")
    client = stack.client()
    with client.lease(url=f"{stack.fake.api_url}/chat/completions") as lease:
        assert lease.provider == "xai-oauth"
    http = stack.http(None, client)  # no provider: each request's URL picks it
    assert stack.chat(http).status_code == 200
    with pytest.raises(credpool.BadRequest) as info:
        client.lease(url="https://unknown.example/v1/chat/completions")
    assert info.value.code == "no_provider_for_url"
    with pytest.raises(credpool.BadRequest) as info:
        client.lease(provider="no-such-provider")
    assert info.value.code == "unknown_provider"


def test_the_tcp_data_plane_with_a_lease_token(make_stack: MakeStack) -> None:
    stack = make_stack(keys=["key-one"])
    serve = stack.start([stack.openai(["key-one"])], tcp=True)
    assert serve.tcp_url is not None
    with credpool.Client(url=serve.tcp_url, token_file=serve.lease_token_file) as client:
        assert client.health()
        with client.lease(provider="openai") as lease:
            assert lease.label == "k1"
    with credpool.Client(url=serve.tcp_url, token="not-the-token-" * 3) as client:
        with pytest.raises(credpool.CredpoolError) as info:
            client.lease(provider="openai")
        assert info.value.status == 401
        assert "not-the-token" not in str(info.value)
