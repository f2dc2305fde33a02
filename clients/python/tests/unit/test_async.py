"""AsyncClient and AsyncCredpoolAuth: the async twins of the sync tests."""

from __future__ import annotations

import os
from typing import AsyncIterator, List

import httpx
import pytest
import pytest_asyncio

import credpool
from credpool import AsyncCredpoolAuth, LeaseExpired, PoolExhausted, ServerUnavailable

from .fakes import CHAT_COMPLETION, FakePool, FakeProvider, answer, lease_json

URL = "https://api.x.ai/v1/chat/completions"
BODY = {"model": "grok-4", "messages": [{"role": "user", "content": "hi"}]}

pytestmark = pytest.mark.asyncio


@pytest_asyncio.fixture
async def aclient(pool: FakePool) -> AsyncIterator[credpool.AsyncClient]:
    async with credpool.AsyncClient(
        url="http://credpool.test", transport=httpx.MockTransport(pool.handler)
    ) as c:
        yield c


@pytest_asyncio.fixture
async def http(
    aclient: credpool.AsyncClient, provider: FakeProvider
) -> AsyncIterator[httpx.AsyncClient]:
    auth = AsyncCredpoolAuth(aclient, provider="xai-oauth")
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(provider.handler)) as h:
        yield h


def tokens(provider: FakeProvider) -> List[str]:
    return [provider.credential(r) for r in provider.seen]


# -- the client -----------------------------------------------------------------------------


async def test_lease_report_release(aclient: credpool.AsyncClient, pool: FakePool) -> None:
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "k2"), "rate_limited", status=429))
    lease = await aclient.lease(provider="openai", model="gpt-4o")
    assert pool.calls[0].body == {"provider": "openai", "model": "gpt-4o"}
    response = httpx.Response(
        429, headers={"retry-after": "3"}, text="slow down",
        request=httpx.Request("POST", "https://api.openai.com/v1/chat/completions"),
    )
    report = await aclient.report(lease, response)
    sent = pool.reports_sent()[0]
    assert sent["status"] == 429 and sent["body"] == "slow down"
    assert ["retry-after", "3"] in sent["headers"]
    assert report.action == "rotate" and report.lease is not None and report.lease.live
    assert not lease.live
    await aclient.release(report.lease)
    await aclient.release(report.lease)
    assert pool.released() == [report.lease.id]
    assert pool.live == {}


async def test_async_with_lease_releases_on_exit(
    aclient: credpool.AsyncClient, pool: FakePool
) -> None:
    async with aclient.lease(provider="openai") as cred:
        assert cred.live
    assert pool.released() == [cred.id]
    assert not cred.live


async def test_async_with_lease_releases_when_the_body_raises(
    aclient: credpool.AsyncClient, pool: FakePool
) -> None:
    with pytest.raises(RuntimeError):
        async with aclient.lease(provider="openai") as cred:
            raise RuntimeError("boom")
    assert pool.released() == [cred.id]


async def test_an_awaited_lease_is_an_async_context_manager(
    aclient: credpool.AsyncClient, pool: FakePool
) -> None:
    lease = await aclient.lease(provider="openai")
    async with lease:
        pass
    async with lease:  # released already: nothing sent
        pass
    assert pool.released() == [lease.id]
    with pytest.raises(TypeError, match="async with"):
        with await aclient.lease(provider="openai"):
            pass  # pragma: no cover


async def test_async_with_after_a_report_does_not_release(
    aclient: credpool.AsyncClient, pool: FakePool
) -> None:
    async with aclient.lease(provider="openai") as cred:
        await aclient.report_success(cred)
    assert pool.released() == []
    assert pool.reports_sent() == [{"outcome": "success"}]


async def test_exhausted(aclient: credpool.AsyncClient, pool: FakePool) -> None:
    pool.leases.append(
        (503, {"error": {"code": "exhausted", "message": "m",
                         "next_available_at": "2026-11-30T02:00:07Z", "causes": {"dead": 1}}})
    )
    with pytest.raises(PoolExhausted) as info:
        await aclient.lease(provider="openai")
    assert info.value.causes == {"dead": 1}


async def test_unknown_lease(aclient: credpool.AsyncClient, pool: FakePool) -> None:
    lease = await aclient.lease(provider="openai")
    pool.live.clear()
    with pytest.raises(LeaseExpired):
        await aclient.release(lease)
    assert not lease.live


async def test_connect_error_is_server_unavailable(tmp_path: "os.PathLike[str]") -> None:
    async with credpool.AsyncClient(socket=os.path.join(str(tmp_path), "absent.sock")) as c:
        with pytest.raises(ServerUnavailable, match="cannot connect"):
            await c.lease(provider="openai")
        with pytest.raises(ServerUnavailable):
            await c.health()


async def test_health_and_repr(aclient: credpool.AsyncClient) -> None:
    assert await aclient.health() is True
    assert repr(aclient) == "AsyncClient(http://credpool.test)"


# -- the auth flow --------------------------------------------------------------------------


async def test_auth_success(http: httpx.AsyncClient, pool: FakePool, provider: FakeProvider) -> None:
    pool.leases.append(lease_json(secret="at-1"))
    response = await http.post(URL, json=BODY, headers={"authorization": "Bearer unused"})
    assert response.status_code == 200 and response.json() == CHAT_COMPLETION
    assert provider.seen[0].headers.get_list("authorization") == ["Bearer at-1"]
    assert pool.reports_sent() == [{"outcome": "success"}]
    assert pool.live == {}


async def test_auth_retry_after_an_expired_token(
    http: httpx.AsyncClient, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "at-old", kind="oauth"))
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at-new", kind="oauth")))
    provider.script("at-old", 403)
    response = await http.post(URL, json=BODY)
    assert response.status_code == 200
    assert tokens(provider) == ["at-old", "at-new"]
    assert pool.live == {}


async def test_auth_rotate_then_wait(
    http: httpx.AsyncClient, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "k1"))
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "k2"), "rate_limited", status=429))
    pool.reports.append(answer("wait", None, "rate_limited", status=429))
    provider.script("k1", 429)
    provider.script("k2", 429)
    response = await http.post(URL, json=BODY)
    assert response.status_code == 429
    assert tokens(provider) == ["k1", "k2"]
    assert pool.live == {}


async def test_auth_give_up(http: httpx.AsyncClient, pool: FakePool, provider: FakeProvider) -> None:
    pool.reports.append(answer("give_up", None, "model_entitlement", status=403))
    provider.script("sk-secret-aaaa", 403)
    assert (await http.post(URL, json=BODY)).status_code == 403
    assert len(provider.seen) == 1 and pool.live == {}


async def test_auth_bound_on_a_repeated_entry(
    http: httpx.AsyncClient, pool: FakePool, provider: FakeProvider
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "kA"))
    pool.reports.append(answer("rotate", lease_json("bbbbbbbbbbbb", 1, "kB"), "billing", status=402))
    pool.reports.append(answer("rotate", lease_json("aaaaaaaaaaaa", 1, "kA"), "billing", status=402))
    provider.script("kA", 402)
    provider.script("kB", 402)
    assert (await http.post(URL, json=BODY)).status_code == 402
    assert tokens(provider) == ["kA", "kB"]
    assert pool.live == {}


async def test_auth_transient_wait(
    http: httpx.AsyncClient, pool: FakePool, provider: FakeProvider, no_sleep: List[float]
) -> None:
    pool.leases.append(lease_json("aaaaaaaaaaaa", 1, "k1"))
    pool.reports.append(
        answer("retry", lease_json("aaaaaaaaaaaa", 1, "k1"), "transient", status=503, retry_after_ms=1500)
    )
    provider.script("k1", 503)
    assert (await http.post(URL, json=BODY)).status_code == 200
    assert no_sleep == [1.5]


async def test_auth_exhausted_first(http: httpx.AsyncClient, pool: FakePool) -> None:
    pool.leases.append(
        (503, {"error": {"code": "exhausted", "message": "m", "next_available_at": None, "causes": {}}})
    )
    with pytest.raises(PoolExhausted):
        await http.post(URL, json=BODY)


async def test_auth_transport_error_releases(aclient: credpool.AsyncClient, pool: FakePool) -> None:
    def broken(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    auth = AsyncCredpoolAuth(aclient, provider="openai")
    async with httpx.AsyncClient(auth=auth, transport=httpx.MockTransport(broken)) as h:
        with pytest.raises(httpx.ReadTimeout):
            await h.post(URL, json=BODY)
    assert len(pool.released()) == 1 and pool.live == {}


async def test_async_auth_refuses_a_sync_client(aclient: credpool.AsyncClient) -> None:
    with httpx.Client(
        auth=AsyncCredpoolAuth(aclient, provider="openai"),
        transport=httpx.MockTransport(lambda r: httpx.Response(200)),
    ) as h:
        with pytest.raises(TypeError, match="CredpoolAuth"):
            h.get(URL)


async def test_the_async_openai_sdk(
    aclient: credpool.AsyncClient, pool: FakePool, provider: FakeProvider
) -> None:
    openai = pytest.importorskip("openai")
    pool.reports.append(answer("retry", lease_json("aaaaaaaaaaaa", 2, "at-new", kind="oauth")))
    provider.script("sk-secret-aaaa", 403)
    http_client = httpx.AsyncClient(
        auth=AsyncCredpoolAuth(aclient, provider="xai-oauth"),
        transport=httpx.MockTransport(provider.handler),
    )
    sdk = openai.AsyncOpenAI(
        base_url="https://api.x.ai/v1", api_key="unused", http_client=http_client, max_retries=0
    )
    completion = await sdk.chat.completions.create(
        model="fake-model", messages=[{"role": "user", "content": "hi"}]
    )
    assert completion.choices[0].message.content == "ok"
    assert tokens(provider) == ["sk-secret-aaaa", "at-new"]
    await sdk.close()
    assert pool.live == {}
