"""Fixtures that run a real `credpool serve` and `credpool fake-provider` in a temp dir.

Skipped unless ``CREDPOOL_BIN`` names the credpool binary.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

import httpx
import pytest

import credpool

from .harness import FakeProvider, Serve, Worker, remove_tree, short_tempdir

HOW_TO_RUN = (
    "integration tests need the credpool binary: "
    "CREDPOOL_BIN=target/debug/credpool pytest clients/python/tests "
    "(build it with `cargo build -p credpool-cli`)"
)

_skip_reason: Optional[str] = None


def _binary() -> Optional[str]:
    """The binary, or None (and the reason in ``_skip_reason``)."""
    global _skip_reason
    binary = os.environ.get("CREDPOOL_BIN")
    if not binary:
        _skip_reason = HOW_TO_RUN
        return None
    binary = os.path.abspath(binary)
    if not os.access(binary, os.X_OK):
        _skip_reason = f"CREDPOOL_BIN={binary} is not an executable file; {HOW_TO_RUN}"
        return None
    try:
        probe = subprocess.run(
            [binary, "fake-provider", "--help"], capture_output=True, timeout=20, text=True
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        _skip_reason = f"{binary} fake-provider --help failed ({err}); {HOW_TO_RUN}"
        return None
    if probe.returncode != 0:
        _skip_reason = f"{binary} has no `fake-provider` subcommand; {HOW_TO_RUN}"
        return None
    return binary


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    ours = [item for item in items if str(item.fspath).startswith(here)]
    if not ours:
        return
    for item in ours:
        item.add_marker(pytest.mark.integration)
    if _binary() is None:
        skip = pytest.mark.skip(reason=_skip_reason or HOW_TO_RUN)
        for item in ours:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _skip_reason is not None:
        terminalreporter.write_line(f"credpool: {_skip_reason}")


# -- the stack ------------------------------------------------------------------------------


class Stack:
    """A fake provider and a `credpool serve` configured against it."""

    def __init__(self, binary: str, workdir: str, fake: FakeProvider) -> None:
        self.binary = binary
        self.workdir = workdir
        self.fake = fake
        self.serve: Optional[Serve] = None
        self._clients: List[credpool.Client] = []
        self._https: List[httpx.Client] = []
        self.workers: List[Worker] = []

    # providers --------------------------------------------------------------------------

    def xai(self, entries: Sequence[Dict[str, Any]] = ()) -> Dict[str, Any]:
        """The `xai-oauth` provider on the fake (it also owns the host 127.0.0.1)."""
        return {
            "id": "xai-oauth",
            "token_url": self.fake.token_url,
            "base_url": self.fake.api_url,
            "hosts": ["127.0.0.1"],  # hosts match without a port
            "entries": list(entries),
        }

    def openai(self, keys: Sequence[str], extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        """The `openai` provider on the fake, one entry per key, labelled k1, k2, …"""
        return {
            "id": "openai",
            "base_url": self.fake.api_url,
            "extra": extra or {},
            "entries": [{"label": f"k{i}", "api_key": key} for i, key in enumerate(keys, 1)],
        }

    def start(self, providers: Sequence[Dict[str, Any]], **kwargs: Any) -> Serve:
        self.serve = Serve(self.binary, self.workdir, providers, **kwargs)
        return self.serve

    # clients ----------------------------------------------------------------------------

    @property
    def socket(self) -> str:
        assert self.serve is not None
        return self.serve.socket

    def client(self, **kwargs: Any) -> credpool.Client:
        kwargs.setdefault("timeout", 10.0)
        client = credpool.Client(socket=self.socket, **kwargs)
        self._clients.append(client)
        return client

    def http(self, provider: Optional[str], client: Optional[credpool.Client] = None) -> httpx.Client:
        """An httpx client whose requests take their credential from the pool."""
        auth = credpool.CredpoolAuth(client or self.client(), provider=provider)
        http = httpx.Client(auth=auth, timeout=10.0, trust_env=False)
        self._https.append(http)
        return http

    def chat(self, http: httpx.Client) -> httpx.Response:
        return http.post(
            f"{self.fake.api_url}/chat/completions",
            json={"model": "fake-model", "messages": [{"role": "user", "content": "hi"}]},
        )

    def worker(self, *args: str) -> Worker:
        worker = Worker(self.workdir, *args)
        self.workers.append(worker)
        return worker

    # the admin API ----------------------------------------------------------------------

    def admin(self) -> httpx.Client:
        assert self.serve is not None
        line = next(l for l in self.serve.lines.seen if "listening on http://" in l)
        base = line.split("listening on ", 1)[1].strip()
        with open(os.path.join(self.workdir, "admin.token")) as f:
            token = f.read().strip()
        http = httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=10.0,
            trust_env=False,
        )
        self._https.append(http)
        return http

    def add_grant(self, label: str, provider: str = "xai-oauth") -> None:
        """Add the fake's grant ``label`` with its current access token (no refresh at once)."""
        grant = self.fake.info["grants"][label]
        response = self.admin().post(
            f"/v1/providers/{provider}/entries",
            json={
                "label": label,
                "refresh_token": grant["refresh_token"],
                "access_token": grant["access_token"],
                "expires_in_s": 3600,
            },
        )
        assert response.status_code == 201, response.text

    def leases_held(self, provider: str) -> int:
        """Leases the pool counts on ``provider``'s entries (the admin snapshot)."""
        snapshot = self.admin().get(f"/v1/providers/{provider}/entries").json()
        return sum(int(entry.get("leases", 0)) for entry in snapshot["entries"])

    def close(self) -> None:
        for worker in self.workers:
            worker.kill()
        for http in self._https:
            http.close()
        for client in self._clients:
            client.close()
        if self.serve is not None:
            self.serve.stop()
        self.fake.stop()


@pytest.fixture(scope="session")
def credpool_bin() -> str:
    binary = _binary()
    if binary is None:
        pytest.skip(_skip_reason or HOW_TO_RUN)
    return binary


@pytest.fixture
def make_stack(credpool_bin: str) -> Iterator[Callable[..., Stack]]:
    """``make_stack(grants=[...], keys=[...])`` starts a fake provider; ``stack.start(...)``
    starts the service. Everything is stopped and removed on teardown."""
    stacks: List[Stack] = []
    dirs: List[str] = []

    def make(grants: Sequence[str] = (), keys: Sequence[str] = ()) -> Stack:
        workdir = short_tempdir()
        dirs.append(workdir)
        fake = FakeProvider(credpool_bin, workdir, grants=grants, keys=keys)
        stack = Stack(credpool_bin, workdir, fake)
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.close()
    for workdir in dirs:
        remove_tree(workdir)
