"""The exceptions the credpool client raises.

Every exception derives from :class:`CredpoolError`. No message ever carries a secret: they
hold the server's own error text (which the server keeps free of secrets), lease ids, codes
and timestamps, never a token or a key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Dict, Optional

__all__ = [
    "CredpoolError",
    "PoolExhausted",
    "LeaseExpired",
    "ServerUnavailable",
    "BadRequest",
]


class CredpoolError(Exception):
    """Base class of every credpool client error.

    Attributes:
        message: a one-line description (never a secret).
        status: the data plane's HTTP status, when the error came from an answer.
        code: the data plane's error code (``"exhausted"``, ``"unknown_lease"``, …) when known.
    """

    def __init__(
        self, message: str, *, status: Optional[int] = None, code: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class PoolExhausted(CredpoolError):
    """No credential of the provider is available now (HTTP 503 ``exhausted``).

    Attributes:
        next_available_at: the earliest moment an entry comes back (``None``: nothing comes
            back by itself — every entry is dead, missing its secret, or there are none).
        causes: why entries are unavailable, e.g. ``{"rate_limited": 2, "dead": 1}``.
        retry_after: the server's ``Retry-After`` header in seconds, when it sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        next_available_at: Optional[datetime] = None,
        causes: Optional[Dict[str, int]] = None,
        retry_after: Optional[float] = None,
    ) -> None:
        super().__init__(message, status=503, code="exhausted")
        self.next_available_at = next_available_at
        self.causes: Dict[str, int] = dict(causes or {})
        self.retry_after = retry_after

    def __str__(self) -> str:
        parts = [self.message]
        if self.next_available_at is not None:
            parts.append(f"next available at {self.next_available_at.isoformat()}")
        if self.causes:
            parts.append(
                "causes: " + ", ".join(f"{k}={v}" for k, v in sorted(self.causes.items()))
            )
        return "; ".join(parts)


class LeaseExpired(CredpoolError):
    """The server does not know a lease the client believed live (HTTP 404 ``unknown_lease``).

    Most often the lease outlived its TTL (the server released it), or the server restarted.
    The lease is consumed: do not use its credential for new requests.

    Attributes:
        lease_id: the lease's id (not a secret).
    """

    def __init__(self, message: str, *, lease_id: Optional[str] = None) -> None:
        super().__init__(message, status=404, code="unknown_lease")
        self.lease_id = lease_id


class ServerUnavailable(CredpoolError):
    """The credpool service could not be reached or did not answer in time.

    Raised for a refused or failed connection, a connection dropped mid-answer, a timeout, and
    a service answering that it is shutting down. Never raised after a hang: every call is
    bounded by the client's connect and read timeouts.
    """


class BadRequest(CredpoolError):
    """The data plane refused the request (HTTP 400).

    ``code`` is one of ``invalid_request``, ``body_too_large``, ``unknown_provider``,
    ``no_provider_for_url`` (or a code of a newer server).
    """

    def __init__(self, code: str, message: str, *, status: int = 400) -> None:
        super().__init__(message, status=status, code=code)

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
