"""The synchronous data-plane client."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Mapping, Optional, Type

import httpx

from . import _wire
from .errors import CredpoolError, LeaseExpired
from .lease import Lease, Report

__all__ = ["Client"]

#: Idle connections kept per client. One thread uses one connection, kept alive between calls.
_LIMITS = httpx.Limits(max_connections=64, max_keepalive_connections=8)


class Client:
    """A client of a running ``credpool serve``'s data plane.

    Give exactly one of ``socket`` (the Unix socket, by default ``<data_dir>/credpool.sock``;
    its file mode is the authentication) or ``url`` (``http://127.0.0.1:7879``, with the lease
    token in ``token`` or in the file ``token_file``).

    One client keeps its connection open between calls (make one per process, not one per
    request); it is safe to share between threads. Every call is bounded by ``timeout``
    seconds (connecting by at most 2 s) and raises :class:`~credpool.ServerUnavailable`
    rather than hang.

    ``transport`` replaces the HTTP transport (tests pass an ``httpx.MockTransport``).
    """

    def __init__(
        self,
        socket: Optional[str] = None,
        url: Optional[str] = None,
        token: Optional[str] = None,
        token_file: Optional[str] = None,
        timeout: float = 5.0,
        *,
        transport: Optional[httpx.BaseTransport] = None,
    ) -> None:
        base_url, headers = _wire.client_settings(socket, url, token, token_file)
        self._where = f"unix:{socket}" if socket is not None else base_url
        if transport is None:
            transport = httpx.HTTPTransport(uds=socket, limits=_LIMITS)
        self._http = httpx.Client(
            base_url=base_url,
            headers=headers,
            timeout=_wire.timeout(timeout),
            transport=transport,
            trust_env=False,  # never send a local service's traffic through an HTTP proxy
            follow_redirects=False,
        )

    # -- the API ----------------------------------------------------------------------------

    def lease(
        self,
        provider: Optional[str] = None,
        url: Optional[str] = None,
        model: Optional[str] = None,
    ) -> Lease:
        """Lease a credential of ``provider``, or of the provider serving ``url``.

        The lease is usable directly and as a context manager (``with client.lease(...) as
        cred:``), which releases it on exit unless a report consumed it.

        Raises:
            PoolExhausted: nothing is available now.
            BadRequest: unknown provider, no provider for the URL, malformed request.
            ServerUnavailable: the service cannot be reached or did not answer in time.
        """
        body = _wire.lease_body(provider, url, model)
        payload = self._call("POST", _wire.LEASE_PATH, body, what="lease")
        lease_obj = payload.get("lease") if isinstance(payload, dict) else None
        return self._bind(_wire.parse_lease(lease_obj))

    def report(self, lease: Lease, response_or_exception: _wire.ReportSubject) -> Report:
        """Tell the pool what happened with ``lease``, and learn what to do next.

        Pass the provider's ``httpx.Response`` (a 1xx–3xx reports a success and releases the
        lease; a 4xx/5xx reports a failure: status, headers, body and request URL are sent), or
        the exception of a transport failure. The report consumes ``lease``: the answer's
        ``lease``, when there is one, replaces it and is live.

        Raises:
            LeaseExpired: the server no longer knows the lease (it outlived its TTL).
            ServerUnavailable: the service cannot be reached or did not answer in time.
        """
        _check_live(lease)
        text: Optional[str] = None
        if isinstance(response_or_exception, httpx.Response) and not _wire.is_success(
            response_or_exception.status_code
        ):
            text = _read_text(response_or_exception)
        body = _wire.report_body(response_or_exception, text)
        payload = self._call(
            "POST", _wire.report_path(lease.id), body, what="report", lease=lease
        )
        lease._mark_consumed()
        report = _wire.parse_report(payload)
        if report.lease is not None:
            self._bind(report.lease)
        return report

    def report_success(self, lease: Lease) -> Report:
        """Report that ``lease``'s credential worked (releases it)."""
        _check_live(lease)
        payload = self._call(
            "POST", _wire.report_path(lease.id), {"outcome": "success"}, what="report",
            lease=lease,
        )
        lease._mark_consumed()
        return _wire.parse_report(payload)

    def release(self, lease: Lease) -> None:
        """Return ``lease`` to the pool. Does nothing if it is already released or reported.

        Raises:
            LeaseExpired: the server no longer knows the lease (it outlived its TTL); the
                lease is then consumed, and releasing it again does nothing.
            ServerUnavailable: the service cannot be reached or did not answer in time.
        """
        if not lease.live:
            return
        self._call("DELETE", _wire.lease_path(lease.id), None, what="release", lease=lease)
        lease._mark_released()

    def health(self) -> bool:
        """Whether the data plane answers ``GET /v1/health`` with ``{"ok": true}``."""
        payload = self._call("GET", _wire.HEALTH_PATH, None, what="health")
        return isinstance(payload, dict) and payload.get("ok") is True

    def close(self) -> None:
        """Close the connection. Leases still held are released by the server after their TTL."""
        self._http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client({self._where})"

    # -- plumbing ---------------------------------------------------------------------------

    def _bind(self, lease: Lease) -> Lease:
        lease._sync_release = self.release
        return lease

    def _call(
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
            response = self._http.request(method, path, content=content, headers=headers)
        except httpx.TransportError as exc:
            raise _wire.unavailable(exc, what) from exc
        try:
            return _wire.decode(response, lease.id if lease is not None else None)
        except LeaseExpired:
            if lease is not None:
                lease._mark_consumed()
            raise


def _check_live(lease: Lease) -> None:
    if not lease.live:
        raise CredpoolError(
            f"lease {lease.id} was already released or reported", code="lease_not_live"
        )


def _read_text(response: httpx.Response) -> str:
    """A provider response's body as text, reading it first if it is a stream."""
    try:
        response.read()
    except (httpx.StreamError, RuntimeError):
        return ""  # consumed by the caller without being kept: nothing left to report
    return _wire.response_text(response)
