"""The asyncio data-plane client: :class:`~credpool.Client` with ``async`` methods."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Generator, Mapping, Optional, Type

import httpx

from . import _wire
from .client import _LIMITS, _check_live
from .errors import LeaseExpired
from .lease import Lease, Report

__all__ = ["AsyncClient"]


class AsyncClient:
    """The async twin of :class:`~credpool.Client` (same arguments, same errors).

    ``lease()`` can be awaited or used as an async context manager::

        lease = await client.lease(provider="openai")
        async with client.lease(provider="openai") as cred:
            ...
    """

    def __init__(
        self,
        socket: Optional[str] = None,
        url: Optional[str] = None,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        timeout: float = 5.0,
        *,
        transport: Optional[httpx.AsyncBaseTransport] = None,
    ) -> None:
        base_url, headers = _wire.client_settings(socket, url, token, token_file)
        self._where = f"unix:{socket}" if socket is not None else base_url
        if transport is None:
            transport = httpx.AsyncHTTPTransport(uds=socket, limits=_LIMITS)
        self._http = httpx.AsyncClient(
            base_url=base_url,
            headers=headers,
            timeout=_wire.timeout(timeout),
            transport=transport,
            trust_env=False,
            follow_redirects=False,
        )

    # -- the API ----------------------------------------------------------------------------

    def lease(
        self,
        provider: Optional[str] = None,
        url: Optional[str] = None,
        model: Optional[str] = None,
    ) -> "LeaseRequest":
        """Lease a credential (see :meth:`credpool.Client.lease`).

        Returns an object to ``await`` (giving the :class:`~credpool.Lease`) or to use with
        ``async with`` (releasing the lease on exit unless a report consumed it).
        """
        body = _wire.lease_body(provider, url, model)  # argument errors raise at once
        return LeaseRequest(self, body)

    async def report(self, lease: Lease, response_or_exception: _wire.ReportSubject) -> Report:
        """Report what happened with ``lease`` (see :meth:`credpool.Client.report`)."""
        _check_live(lease)
        text: Optional[str] = None
        if isinstance(response_or_exception, httpx.Response) and not _wire.is_success(
            response_or_exception.status_code
        ):
            text = await _aread_text(response_or_exception)
        body = _wire.report_body(response_or_exception, text)
        payload = await self._call(
            "POST", _wire.report_path(lease.id), body, what="report", lease=lease
        )
        lease._mark_consumed()
        report = _wire.parse_report(payload)
        if report.lease is not None:
            self._bind(report.lease)
        return report

    async def report_success(self, lease: Lease) -> Report:
        """Report that ``lease``'s credential worked (releases it)."""
        _check_live(lease)
        payload = await self._call(
            "POST", _wire.report_path(lease.id), {"outcome": "success"}, what="report",
            lease=lease,
        )
        lease._mark_consumed()
        return _wire.parse_report(payload)

    async def release(self, lease: Lease) -> None:
        """Return ``lease`` to the pool (see :meth:`credpool.Client.release`)."""
        if not lease.live:
            return
        await self._call("DELETE", _wire.lease_path(lease.id), None, what="release", lease=lease)
        lease._mark_released()

    async def health(self) -> bool:
        """Whether the data plane answers ``GET /v1/health`` with ``{"ok": true}``."""
        payload = await self._call("GET", _wire.HEALTH_PATH, None, what="health")
        return isinstance(payload, dict) and payload.get("ok") is True

    async def aclose(self) -> None:
        """Close the connection."""
        await self._http.aclose()

    async def close(self) -> None:
        """Close the connection (an alias of :meth:`aclose`)."""
        await self.aclose()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"AsyncClient({self._where})"

    # -- plumbing ---------------------------------------------------------------------------

    async def _lease(self, body: Mapping[str, Any]) -> Lease:
        payload = await self._call("POST", _wire.LEASE_PATH, body, what="lease")
        lease_obj = payload.get("lease") if isinstance(payload, dict) else None
        return self._bind(_wire.parse_lease(lease_obj))

    def _bind(self, lease: Lease) -> Lease:
        lease._async_release = self.release
        return lease

    async def _call(
        self,
        method: str,
        path: str,
        body: Optional[Mapping[str, Any]],
        *,
        what: str,
        lease: Optional[Lease] = None,
    ) -> Any:
        content = _wire.encode(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        try:
            response = await self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise _wire.unavailable(exc, what) from exc
        try:
            return _wire.decode(response, lease.id if lease is not None else None)
        except LeaseExpired:
            if lease is not None:
                lease._mark_consumed()
            raise


class LeaseRequest:
    """What :meth:`AsyncClient.lease` returns: awaitable, and an async context manager."""

    def __init__(self, client: AsyncClient, body: Mapping[str, Any]) -> None:
        self._client = client
        self._body = body
        self._lease: Optional[Lease] = None

    def __await__(self) -> Generator[Any, None, Lease]:
        return self._client._lease(self._body).__await__()

    async def __aenter__(self) -> Lease:
        self._lease = await self._client._lease(self._body)
        return self._lease

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        if self._lease is not None:
            await self._lease.__aexit__(exc_type, exc, tb)


async def _aread_text(response: httpx.Response) -> str:
    """A provider response's body as text, reading it first if it is a stream."""
    try:
        await response.aread()
    except (httpx.StreamError, RuntimeError):
        try:  # a synchronous response handed to the async client
            response.read()
        except (httpx.StreamError, RuntimeError):
            return ""
    return _wire.response_text(response)
