"""A Python client of credpool's data plane.

::

    import credpool, httpx

    pool = credpool.Client(socket="/var/lib/credpool/credpool.sock")
    with pool.lease(provider="openai") as cred:
        httpx.post(url, headers={cred.header_name: cred.header_value}, json=...)

    http = httpx.Client(auth=credpool.CredpoolAuth(pool, provider="xai-oauth"))

See the README for the whole story.
"""

from __future__ import annotations

from .async_client import AsyncClient
from .auth import AsyncCredpoolAuth, CredpoolAuth
from .client import Client
from .errors import BadRequest, CredpoolError, LeaseExpired, PoolExhausted, ServerUnavailable
from .lease import Classification, Lease, Report

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "AsyncCredpoolAuth",
    "BadRequest",
    "Classification",
    "Client",
    "CredpoolAuth",
    "CredpoolError",
    "Lease",
    "LeaseExpired",
    "PoolExhausted",
    "Report",
    "ServerUnavailable",
    "__version__",
]
