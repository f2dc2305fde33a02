"""CredpoolAuth's flows against an in-memory data plane and a scripted provider."""

from __future__ import annotations

import json
from typing import Iterator, List

import httpx
import pytest

import credpool
from credpool import CredpoolAuth, PoolExhausted, ServerUnavailable

from .fakes import CHAT_COMPLETION, FakePool, FakeProvider, answer, lease_json

URL = "https://api.x.ai/v1/chat/completions"
BODY = {"model": "grok-4", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def http(
    client: credpool.Client, provider: FakeProvider
) -> Iterator[httpx.Client]:
    auth = CredpoolAuth(client, provider="xai-oauth")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        yield h


def tokens(provider: FakeProvider) -> List[str]:
    return [provider.credential(r) for r in provider.seen]


def test_success_sets_the_header_and_reports_success(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json(secret="at-1"))
    response = http.post(URL, json=BODY, headers={"authorization": "Bearer unused"})
    assert response.status_code == 200
    assert response.json() == CHAT_COMPLETION
    assert tokens(provider) == ["at-1"]
    assert provider.seen[0].headers.get_list("authorization") == ["Bearer at-1"]
    assert pool.calls[0].body == {"provider": "xai-oauth"}
    assert pool.reports_sent() == [{"outcome": "success"}]
    assert pool.live == {}


def test_other_credential_headers_are_removed(
    client: credpool.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json(secret="key-1", header_name="x-api-key"))
    auth = CredpoolAuth(client, provider="anthropic")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        h.get(URL, headers={"authorization": "Bearer unused", "x-api-key": "unused"})
    sent = provider.seen[0].headers
    assert "authorization" not in sent
    assert sent.get_list("x-api-key") == ["key-1"]


def test_expired_token_is_retried_with_the_refreshed_lease(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "at-old", kind="oauth"))
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at-new", kind="oauth")))
    provider.script("at-old", 403)

    response = http.post(URL, json=BODY)

    assert response.status_code == 200
    assert tokens(provider) == ["at-old", "at-new"]
    # the body is sent again, unchanged
    assert [json.loads(r.content) for r in provider.seen] == [BODY, BODY]
    failure, success = pool.reports_sent()
    assert failure["status"] == 403 and failure["url"] == URL
    assert "scripted failure" in failure["body"]
    assert success == {"outcome": "success"}
    assert pool.live == {}
    assert len(response.history) == 1 and response.history[0].status_code == 403


def test_rate_limit_rotates_to_another_entry(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "k1"))
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "k2"), "rate_limited", status=429))
    provider.script("k1", 429)

    response = http.post(URL, json=BODY)

    assert response.status_code == 200
    assert tokens(provider) == ["k1", "k2"]
    assert ["retry-after", "3"] in pool.reports_sent()[0]["headers"]
    assert pool.live == {}


def test_wait_returns_the_providers_429(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.reports.append(
        answer("wait", None, "rate_limited", status=429, next_available_at="2026-11-30T02:01:00Z")
    )
    provider.script("sk-secret-aaaa", 429)

    response = http.post(URL, json=BODY)

    assert response.status_code == 429
    assert response.headers["retry-after"] == "3"
    assert response.json()["error"]["code"] == "e429"
    assert len(provider.seen) == 1
    assert pool.live == {}


def test_give_up_returns_the_response_as_is(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.reports.append(answer("give_up", None, "other", status=400))
    provider.script("sk-secret-aaaa", 400)

    response = http.post(URL, json=BODY)

    assert response.status_code == 400
    assert len(provider.seen) == 1
    assert pool.released() == []  # the report consumed the lease
    assert pool.live == {}


def test_exhausted_before_the_first_attempt_raises(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(
        (503, {"error": {"code": "exhausted", "message": "m",
                         "next_available_at": "2026-11-30T02:01:00Z", "causes": {"rate_limited": 2}}})
    )
    with pytest.raises(PoolExhausted) as info:
        http.post(URL, json=BODY)
    assert info.value.next_available_at is not None
    assert provider.seen == []


def test_stops_when_offered_an_entry_that_already_failed(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    # Two keys, both refused: A → B → A again (same generation): stop after 2 attempts.
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "kA"))
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "kB"), "auth_invalid", status=401))
    pool.reports.append(answer("rotate", lease_json("aaaaaaaaaaaa", 1, "kA"), "auth_invalid", status=401))
    provider.script("kA", 401, 401)
    provider.script("kB", 401)

    response = http.post(URL, json=BODY)

    assert response.status_code == 401
    assert tokens(provider) == ["kA", "kB"]
    assert pool.live == {}  # the lease offered on A again was released, not used
    assert len(pool.released()) == 1


def test_a_refreshed_generation_of_a_failed_entry_is_tried(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "at1"))
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at2")))
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 3, "at3")))
    provider.script("at1", 403)
    provider.script("at2", 403)
    assert http.post(URL, json=BODY).status_code == 200
    assert tokens(provider) == ["at1", "at2", "at3"]


def test_max_attempts_bounds_the_attempts(
    client: credpool.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "t1"))
    for generation in range(2, 12):
        pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", generation, f"t{generation}")))
        provider.script(f"t{generation - 1}", 403)
    auth = CredpoolAuth(client, provider="xai-oauth", max_attempts=3)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        response = h.post(URL, json=BODY)
    assert response.status_code == 403
    assert tokens(provider) == ["t1", "t2", "t3"]
    assert pool.live == {}


def test_the_default_bound_is_eight(
    http: httpx.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "t1"))
    for generation in range(2, 20):
        pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", generation, f"t{generation}")))
        provider.script(f"t{generation - 1}", 403)
    assert http.post(URL, json=BODY).status_code == 403
    assert len(provider.seen) == 8
    assert pool.live == {}


def test_transient_retry_waits_and_reuses_the_same_credential(
    http: httpx.Client, pool: FakePool, provider: FakeProvider, no_sleep: List[float]
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "k1"))
    pool.reports.append(
        answer("retry", lease_json("aaaaaaaaaaaa", 1, "k1"), "transient", status=503, retry_after_ms=250)
    )
    provider.script("k1", 503)
    assert http.post(URL, json=BODY).status_code == 200
    assert tokens(provider) == ["k1", "k1"]
    assert no_sleep == [0.25]


def test_a_wait_longer_than_max_wait_returns_the_failure(
    client: credpool.Client, pool: FakePool, provider: FakeProvider, no_sleep: List[float]
) -> None:
    pool.reports.append(
        answer("retry", lease_json("aaaaaaaaaaaa", 1, "k1"), "transient", status=503, retry_after_ms=60_000)
    )
    provider.script("sk-secret-aaaa", 503)
    auth = CredpoolAuth(client, provider="openai", max_wait=5)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        assert h.post(URL, json=BODY).status_code == 503
    assert no_sleep == []
    assert pool.live == {}


def test_a_transport_error_releases_the_lease(
    client: credpool.Client, pool: FakePool
) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection reset by peer", request=request)

    auth = CredpoolAuth(client, provider="openai")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(broken)) as h:
        with pytest.raises(httpx.ConnectError):
            h.post(URL, json=BODY)
    assert len(pool.released()) == 1
    assert pool.live == {}


def test_an_exception_between_attempts_releases_the_offered_lease(
    client: credpool.Client, pool: FakePool, provider: FakeProvider
) -> None:
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at2")))
    provider.script("sk-secret-aaaa", 403)
    provider.script("at2", lambda: (_ for _ in ()).throw(KeyboardInterrupt()))
    auth = CredpoolAuth(client, provider="openai")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        with pytest.raises(KeyboardInterrupt):
            h.post(URL, json=BODY)
    assert pool.live == {}


def test_credpool_down_during_the_report_raises_server_unavailable(
    pool: FakePool, provider: FakeProvider
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/report"):
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return pool.handler(request)

    provider.script("sk-secret-aaaa", 403)
    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(handler)) as c:
        auth = CredpoolAuth(c, provider="openai")
        with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
            with pytest.raises(ServerUnavailable):
                h.post(URL, json=BODY)


def test_a_failed_success_report_still_returns_the_response(
    pool: FakePool, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/report"):
            return httpx.Response(404, json={"error": {"code": "unknown_lease", "message": "gone"}})
        return pool.handler(request)

    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(handler)) as c:
        auth = CredpoolAuth(c, provider="openai")
        with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
            assert h.post(URL, json=BODY).status_code == 200
    assert "sk-secret" not in caplog.text


def test_an_expired_lease_at_report_time_leases_anew(
    pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.extend([lease_json("aaaaaaaaaaaa", 1, "at1"), lease_json("aaaaaaaaaaaa", 2, "at2")])
    provider.script("at1", 403)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/report") and json.loads(request.content).get("status"):
            pool.live.pop(request.url.path.split("/")[3], None)  # the TTL passed mid-request
        return pool.handler(request)

    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(handler)) as c:
        auth = CredpoolAuth(c, provider="xai-oauth")
        with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
            assert h.post(URL, json=BODY).status_code == 200
    assert tokens(provider) == ["at1", "at2"]
    assert pool.live == {}


def test_without_a_provider_the_request_url_is_leased_by(
    client: credpool.Client, pool: FakePool, provider: FakeProvider
) -> None:
    auth = CredpoolAuth(client)
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        h.post(URL + "?key=secret-in-query", json=BODY)
    assert pool.calls[0].body == {"url": URL}


def test_model_is_passed_to_the_lease(
    client: credpool.Client, pool: FakePool, provider: FakeProvider
) -> None:
    auth = CredpoolAuth(client, provider="xai-oauth", model="grok-4")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        h.post(URL, json=BODY)
    assert pool.calls[0].body == {"provider": "xai-oauth", "model": "grok-4"}


class _Chunks(httpx.SyncByteStream):
    def __init__(self) -> None:
        self.read_by_someone = False

    def __iter__(self) -> Iterator[bytes]:
        self.read_by_someone = True
        yield b"data: one\n\n"
        yield b"data: two\n\n"


def test_a_successful_stream_is_not_read_by_the_flow(
    client: credpool.Client, pool: FakePool
) -> None:
    chunks = _Chunks()
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=chunks))
    with httpx.Client(auth=CredpoolAuth(client, provider="openai"), transport=transport) as h:
        with h.stream("POST", URL, json=BODY) as response:
            assert response.status_code == 200
            assert not chunks.read_by_someone
            assert pool.reports_sent() == [{"outcome": "success"}]
            assert list(response.iter_lines()) == ["data: one", "", "data: two", ""]


def test_max_attempts_must_be_positive(client: credpool.Client) -> None:
    with pytest.raises(ValueError):
        CredpoolAuth(client, max_attempts=0)
    assert "secret" not in repr(CredpoolAuth(client, provider="openai"))


def test_sync_auth_refuses_an_async_client(client: credpool.Client, provider: FakeProvider) -> None:
    import asyncio

    async def go() -> None:
        async with httpx.AsyncClient(
            auth=CredpoolAuth(client, provider="openai"), transport=httpx.MockTransport(provider.handler)
        ) as h:
            await h.get(URL)

    with pytest.raises(TypeError, match="AsyncCredpoolAuth"):
        asyncio.run(go())


def test_the_openai_sdk_overwrites_its_own_key_and_heals_a_403(
    client: credpool.Client, pool: FakePool, provider: FakeProvider
) -> None:
    openai = pytest.importorskip("openai")
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "at-old", kind="oauth"))
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at-new", kind="oauth")))
    provider.script("at-old", 403)
    http_client = httpx.Client(
        auth=CredpoolAuth(client, provider="xai-oauth"),
        transport=httpx.MockTransport(provider.handler),
    )
    sdk = openai.OpenAI(
        base_url="https://api.x.ai/v1", api_key="unused", http_client=http_client, max_retries=0
    )
    completion = sdk.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "ok"
    assert tokens(provider) == ["at-old", "at-new"]
    assert all("unused" not in r.headers.get("authorization", "") for r in provider.seen)
    assert pool.live == {}
    sdk.close()


def test_no_secret_reaches_a_log_line(
    client: credpool.Client, pool: FakePool, provider: FakeProvider, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    caplog.set_level(logging.DEBUG)
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "at-old-SECRET"))
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at-new-SECRET")))
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "k2-SECRET"), "auth_invalid", status=401))
    provider.script("at-old-SECRET", 403)
    provider.script("at-new-SECRET", 401)
    auth = CredpoolAuth(client, provider="xai-oauth")
    with httpx.Client(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        assert h.post(URL, json=BODY).status_code == 200
    assert "credpool:" in caplog.text  # the flow did log its steps
    assert "SECRET" not in caplog.text
