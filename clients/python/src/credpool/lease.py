"""Leases, classifications and report answers: the data plane's values.

A :class:`Lease` carries a secret (``header_value``). Its ``repr`` and ``str`` never show it,
and neither does any other object of this package.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Awaitable, Callable, Dict, Literal, Optional, Type

from .errors import CredpoolError

__all__ = ["Lease", "Classification", "Report"]

#: The lease is held: release it, or report on it.
_LIVE = "live"
#: Released by this client (``release`` or a context manager's exit).
_RELEASED = "released"
#: Consumed by a report (or found unknown by the server): nothing left to release.
_CONSUMED = "consumed"

SyncReleaser = Callable[["Lease"], None]
AsyncReleaser = Callable[["Lease"], Awaitable[None]]


@dataclass(eq=False, repr=False)
class Lease:
    """A credential lent by the pool until it is released or reported.

    Use it directly (``client.release(lease)`` or ``client.report(lease, response)``) or as a
    context manager, which releases it on exit unless a report consumed it::

        with client.lease(provider="openai") as cred:
            headers = {cred.header_name: cred.header_value}

    Releasing twice, or releasing a lease a report consumed, does nothing.

    Attributes:
        id: the lease id (32 hex digits).
        provider: the provider id, e.g. ``"xai-oauth"``.
        entry: the pool entry's id (12 hex digits).
        label: the entry's label.
        generation: the token generation (grows with every refresh of an OAuth grant).
        kind: ``"oauth"`` or ``"api_key"``.
        base_url: the endpoint this credential is bound to, when the entry has one.
        header_name: the header to set on the provider request (``authorization``,
            ``x-api-key``, …).
        header_value: the header's value. **A secret**: never logged, never in ``repr``.
        expires_at: when the server releases the lease by itself (every report extends it).
    """

    id: str
    provider: str
    entry: str
    label: str
    generation: int
    kind: str
    base_url: Optional[str]
    header_name: str
    header_value: str
    expires_at: datetime
    _state: str = field(default=_LIVE, compare=False)
    _sync_release: Optional[SyncReleaser] = field(default=None, compare=False)
    _async_release: Optional[AsyncReleaser] = field(default=None, compare=False)

    # -- state -------------------------------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether this client still holds the lease (not released, not consumed)."""
        return self._state == _LIVE

    @property
    def headers(self) -> Dict[str, str]:
        """The provider request's auth header as a one-item dict (holds the secret)."""
        return {self.header_name: self.header_value}

    def _mark_released(self) -> None:
        self._state = _RELEASED

    def _mark_consumed(self) -> None:
        self._state = _CONSUMED

    # -- release -----------------------------------------------------------------------------

    def release(self) -> None:
        """Release the lease through the synchronous client that made it (no-op if not live)."""
        if not self.live:
            return
        if self._sync_release is None:
            raise TypeError(
                "this lease belongs to an AsyncClient: use `await lease.arelease()`"
                if self._async_release is not None
                else "this lease is not bound to a client"
            )
        self._sync_release(self)

    async def arelease(self) -> None:
        """Release the lease through the async client that made it (no-op if not live)."""
        if not self.live:
            return
        if self._async_release is not None:
            await self._async_release(self)
        elif self._sync_release is not None:
            self._sync_release(self)
        else:
            raise TypeError("this lease is not bound to a client")

    def __enter__(self) -> "Lease":
        if self._sync_release is None and self._async_release is not None:
            raise TypeError("this lease belongs to an AsyncClient: use `async with`")
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]:
        _release_on_exit(self, exc, self.release)
        return False

    async def __aenter__(self) -> "Lease":
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]:
        try:
            await self.arelease()
        except CredpoolError as err:
            if not _swallow_on_exit(self, err, exc):
                raise
        return False

    # -- display -----------------------------------------------------------------------------

    def __repr__(self) -> str:
        return (
            f"Lease(id={self.id!r}, provider={self.provider!r}, entry={self.entry!r}, "
            f"label={self.label!r}, generation={self.generation}, kind={self.kind!r}, "
            f"base_url={self.base_url!r}, header_name={self.header_name!r}, "
            f"header_value='<redacted>', expires_at={self.expires_at.isoformat()!r}, "
            f"state={self._state!r})"
        )

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Lease) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)


def _release_on_exit(
    lease: Lease, exc: Optional[BaseException], release: Callable[[], None]
) -> None:
    """Release on a synchronous context manager's exit (see :func:`_swallow_on_exit`)."""
    try:
        release()
    except CredpoolError as err:
        if not _swallow_on_exit(lease, err, exc):
            raise


def _swallow_on_exit(lease: Lease, err: CredpoolError, exc: Optional[BaseException]) -> bool:
    """Whether a context manager's exit swallows ``err``, the error of its release.

    An ``unknown_lease`` answer is swallowed: the server released the lease already (its TTL
    passed), which is all the exit wanted. Other errors propagate, unless the body raised:
    then the body's exception wins and the lease is left to the server's TTL.
    """
    if err.code == "unknown_lease" or exc is not None:
        lease._mark_consumed()
        return True
    return False


@dataclass(frozen=True)
class Classification:
    """How the server classified a reported failure.

    Attributes:
        kind: ``auth_expired``, ``auth_invalid``, ``rate_limited``, ``billing``,
            ``transient``, ``model_entitlement`` or ``other`` (kept as text: a newer server
            may send finer names).
        status: the provider's HTTP status (``None`` for a transport failure).
        reason: the provider's own error code, when it gave one.
        reset_at: when the limit resets, when the answer said.
        detail: the fine kind (``rate_limited_model``, ``auth_invalid_terminal``, …), when
            the server sent it.
    """

    kind: str
    status: Optional[int] = None
    reason: Optional[str] = None
    reset_at: Optional[datetime] = None
    detail: Optional[str] = None


@dataclass(repr=False)
class Report:
    """The server's answer to a report.

    Attributes:
        action: ``released`` (a success), ``retry`` (same entry: refreshed token, current
            token, or after ``retry_after_ms``), ``rotate`` (another entry), ``wait`` (nothing
            available until ``next_available_at``) or ``give_up`` (not the credential's fault:
            hand the provider's answer to the caller).
        classification: the failure's classification (``None`` for a success).
        lease: the lease to retry with (``retry``/``rotate``), already live and bound to the
            client: release it or report on it. ``None`` otherwise.
        retry_after_ms: how long to wait before retrying.
        next_available_at: when an entry comes back (``wait``).
        causes: for ``wait``, how many entries are unavailable for each reason.
    """

    action: str
    classification: Optional[Classification] = None
    lease: Optional[Lease] = None
    retry_after_ms: int = 0
    next_available_at: Optional[datetime] = None
    causes: Dict[str, int] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"Report(action={self.action!r}, classification={self.classification!r}, "
            f"lease={self.lease!r}, retry_after_ms={self.retry_after_ms}, "
            f"next_available_at={self.next_available_at!r}, causes={self.causes!r})"
        )
