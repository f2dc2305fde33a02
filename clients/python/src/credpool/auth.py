"""httpx authentication that takes every request's credential from the pool.

``httpx.Client(auth=CredpoolAuth(client, provider="xai-oauth"))`` leases a credential per
request, sets its header, reports the provider's answer and follows the pool's advice:

========== ==============================================================================
answer     what the auth flow does
========== ==============================================================================
success    (1xx–3xx) reports it (the lease is released) and returns the response
retry      waits ``retry_after_ms`` (if any), resends with the answer's lease (same entry)
rotate     resends with the answer's lease (another entry)
wait       returns the provider's failure response (e.g. the 429) to the caller
give_up    returns the provider's failure response to the caller
========== ==============================================================================

**Exhaustion.** When the pool has nothing for the *first* attempt there is no provider answer
to return, so :class:`~credpool.PoolExhausted` is raised. When it runs out *during* a request
(the answer is ``wait``), the caller gets the provider's last failure response (status,
headers such as ``Retry-After`` and body as the provider sent them), which HTTP callers such
as the OpenAI SDK already know how to handle.

**Bound.** A request makes at most ``max_attempts`` credential attempts (default 8), and stops
early — returning the last failure — when the pool offers a credential (entry and token
generation) that already failed this request for a non-transient reason: with N entries, at
most N + 1 attempts (the "+1" being a refreshed token). It also stops when the pool asks to
wait more than ``max_wait`` seconds before a retry.

**No leak.** Every lease the flow takes is reported or released on every path: a transport
error, a cancellation or any exception releases the lease it held.

**Headers.** The lease's header replaces any credential header the caller set
(``Authorization``, ``x-api-key``, ``x-goog-api-key``, ``api-key``): the OpenAI SDK's
``Authorization: Bearer unused`` never reaches the provider.

**Streaming.** Only failure responses are read by the flow; a successful streaming response
reaches the caller unread. (So ``requires_response_body`` is ``False``: with ``True`` httpx
would buffer every successful stream before handing it over.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import AsyncGenerator, Generator, List, Optional, Set, Tuple

import httpx

from . import _wire
from .async_client import AsyncClient
from .client import Client
from .errors import CredpoolError, LeaseExpired, PoolExhausted
from .lease import Lease, Report

__all__ = ["CredpoolAuth", "AsyncCredpoolAuth", "DEFAULT_MAX_ATTEMPTS"]

# The flows' sleeps (module attributes, so tests can replace them).
_sleep = time.sleep
_asleep = asyncio.sleep

log = logging.getLogger("credpool")

#: The default bound on credential attempts per request.
DEFAULT_MAX_ATTEMPTS = 8
#: The longest wait the flow sleeps before a retry, seconds.
DEFAULT_MAX_WAIT_S = 10.0

#: Credential headers a caller (or an SDK) may have set; the lease's header replaces them.
_CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")


def _apply(request: httpx.Request, lease: Lease) -> None:
    """Put ``lease``'s header on ``request``, removing any other credential header."""
    own = lease.header_name.lower()
    for name in _CREDENTIAL_HEADERS:
        if name != own and name in request.headers:
            del request.headers[name]
    request.headers[lease.header_name] = lease.header_value


def _is_transient(report: Report) -> bool:
    kind = report.classification.kind if report.classification is not None else ""
    return kind.startswith("transient")


class _Attempts:
    """The attempt bound of one request (shared by the sync and async flows)."""

    def __init__(self, max_attempts: int, max_wait: float) -> None:
        self.max_attempts = max_attempts
        self.max_wait = max_wait
        self.count = 0
        self.failed: Set[Tuple[str, int]] = set()

    def failure(self, lease: Lease, report: Optional[Report]) -> None:
        """Record that ``lease`` failed (transient failures are not the credential's)."""
        if report is None or not _is_transient(report):
            self.failed.add((lease.entry, lease.generation))

    def accepts(self, offered: Lease, wait_s: float) -> bool:
        """Whether to resend with ``offered`` after waiting ``wait_s``."""
        if self.count >= self.max_attempts:
            log.debug("credpool: %d attempts made; returning the last answer", self.count)
            return False
        if (offered.entry, offered.generation) in self.failed:
            log.debug(
                "credpool: entry %s generation %d already failed this request",
                offered.entry,
                offered.generation,
            )
            return False
        if wait_s > self.max_wait:
            log.debug("credpool: the pool asks to wait %.1f s; returning the last answer", wait_s)
            return False
        return True


class _Base(httpx.Auth):
    requires_request_body = True  # a retry resends the body
    requires_response_body = False  # failures are read by the flow; successes stay streams

    def __init__(
        self,
        provider: Optional[str],
        max_attempts: Optional[int],
        model: Optional[str],
        max_wait: float,
    ) -> None:
        if max_attempts is not None and max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.provider = provider
        self.model = model
        self.max_attempts = max_attempts if max_attempts is not None else DEFAULT_MAX_ATTEMPTS
        self.max_wait = max_wait

    def _lease_args(self, request: httpx.Request) -> Tuple[Optional[str], Optional[str]]:
        if self.provider is not None:
            return self.provider, None
        return None, _wire.reported_url(request.url)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(provider={self.provider!r}, "
            f"max_attempts={self.max_attempts})"
        )


class CredpoolAuth(_Base):
    """``httpx.Auth`` for ``httpx.Client``: a pool credential per request (see the module doc).

    Args:
        client: the :class:`~credpool.Client` to lease through.
        provider: the provider to lease from; ``None`` leases by each request's URL (the
            server maps its host to a provider).
        max_attempts: the most credential attempts per request (default 8).
        model: the model the requests are for, when the pool should know it.
        max_wait: the longest wait (seconds) the flow sleeps before a retry (default 10).
    """

    def __init__(
        self,
        client: Client,
        provider: Optional[str] = None,
        max_attempts: Optional[int] = None,
        *,
        model: Optional[str] = None,
        max_wait: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        super().__init__(provider, max_attempts, model, max_wait)
        self.client = client

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        request.read()
        provider, url = self._lease_args(request)
        held: List[Lease] = [self.client.lease(provider=provider, url=url, model=self.model)]
        attempts = _Attempts(self.max_attempts, self.max_wait)
        try:
            while True:
                lease = held[-1]
                attempts.count += 1
                _apply(request, lease)
                response = yield request
                if _wire.is_success(response.status_code):
                    self._settle_success(lease)
                    return
                response.read()
                try:
                    report: Optional[Report] = self.client.report(lease, response)
                except LeaseExpired:
                    report = None  # the lease outlived its TTL mid-request; lease anew
                attempts.failure(lease, report)
                offered = self._offered(report, provider, url)
                if offered is None:
                    return
                held.append(offered)
                wait_s = report.retry_after_ms / 1000 if report is not None else 0.0
                if not attempts.accepts(offered, wait_s):
                    return
                log.debug("credpool: %s; resending with lease %s", _why(report), offered.id)
                if wait_s > 0:
                    _sleep(wait_s)
        finally:
            for lease in held:
                if lease.live:
                    _release_quietly(self.client, lease)

    def _offered(
        self, report: Optional[Report], provider: Optional[str], url: Optional[str]
    ) -> Optional[Lease]:
        if report is not None:
            return report.lease if report.action in ("retry", "rotate") else None
        try:
            return self.client.lease(provider=provider, url=url, model=self.model)
        except PoolExhausted:
            return None

    def _settle_success(self, lease: Lease) -> None:
        try:
            self.client.report_success(lease)
        except CredpoolError as err:
            # The provider answered; the pool missing a success only delays a release by the
            # lease's TTL. Never fail the caller's request for it.
            log.warning("credpool: reporting success of lease %s failed: %s", lease.id, err)

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise TypeError("CredpoolAuth is for httpx.Client; use AsyncCredpoolAuth")
        yield request  # pragma: no cover - makes this an async generator


class AsyncCredpoolAuth(_Base):
    """``httpx.Auth`` for ``httpx.AsyncClient``, leasing through an :class:`AsyncClient`.

    Same arguments and behaviour as :class:`CredpoolAuth`.
    """

    def __init__(
        self,
        client: AsyncClient,
        provider: Optional[str] = None,
        max_attempts: Optional[int] = None,
        *,
        model: Optional[str] = None,
        max_wait: float = DEFAULT_MAX_WAIT_S,
    ) -> None:
        super().__init__(provider, max_attempts, model, max_wait)
        self.client = client

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        await request.aread()
        provider, url = self._lease_args(request)
        held: List[Lease] = [await self.client.lease(provider=provider, url=url, model=self.model)]
        attempts = _Attempts(self.max_attempts, self.max_wait)
        try:
            while True:
                lease = held[-1]
                attempts.count += 1
                _apply(request, lease)
                response = yield request
                if _wire.is_success(response.status_code):
                    await self._settle_success(lease)
                    return
                await response.aread()
                try:
                    report: Optional[Report] = await self.client.report(lease, response)
                except LeaseExpired:
                    report = None
                attempts.failure(lease, report)
                offered = await self._offered(report, provider, url)
                if offered is None:
                    return
                held.append(offered)
                wait_s = report.retry_after_ms / 1000 if report is not None else 0.0
                if not attempts.accepts(offered, wait_s):
                    return
                log.debug("credpool: %s; resending with lease %s", _why(report), offered.id)
                if wait_s > 0:
                    await _asleep(wait_s)
        finally:
            for lease in held:
                if lease.live:
                    await _arelease_quietly(self.client, lease)

    async def _offered(
        self, report: Optional[Report], provider: Optional[str], url: Optional[str]
    ) -> Optional[Lease]:
        if report is not None:
            return report.lease if report.action in ("retry", "rotate") else None
        try:
            return await self.client.lease(provider=provider, url=url, model=self.model)
        except PoolExhausted:
            return None

    async def _settle_success(self, lease: Lease) -> None:
        try:
            await self.client.report_success(lease)
        except CredpoolError as err:
            log.warning("credpool: reporting success of lease %s failed: %s", lease.id, err)

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        raise TypeError("AsyncCredpoolAuth is for httpx.AsyncClient; use CredpoolAuth")
        yield request  # pragma: no cover - makes this a generator


def _why(report: Optional[Report]) -> str:
    if report is None:
        return "the lease expired during the request"
    kind = report.classification.kind if report.classification is not None else "?"
    return f"{report.action} after {kind}"


def _release_quietly(client: Client, lease: Lease) -> None:
    try:
        client.release(lease)
    except CredpoolError as err:
        # Unknown lease: released already. Unreachable server: its TTL frees the lease.
        log.debug("credpool: releasing lease %s: %s", lease.id, err)


async def _arelease_quietly(client: AsyncClient, lease: Lease) -> None:
    try:
        await client.release(lease)
    except CredpoolError as err:
        log.debug("credpool: releasing lease %s: %s", lease.id, err)
