from __future__ import annotations

from typing import Iterator

import httpx
import pytest

import credpool

from .fakes import FakePool, FakeProvider


@pytest.fixture
def pool() -> FakePool:
    return FakePool()


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider()


@pytest.fixture
def client(pool: FakePool) -> Iterator[credpool.Client]:
    with credpool.Client(url="http://credpool.test", transport=httpx.MockTransport(pool.handler)) as c:
        yield c


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list:  # type: ignore[type-arg]
    """Records the auth flow's sleeps instead of sleeping."""
    slept: list = []  # type: ignore[type-arg]
    monkeypatch.setattr("credpool.auth._sleep", slept.append)

    async def fake_async_sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr("credpool.auth._asleep", fake_async_sleep)
    return slept
