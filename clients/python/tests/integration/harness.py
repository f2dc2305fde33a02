"""Processes for the integration tests: `credpool fake-provider`, `credpool serve`, workers.

Every wait here is a bounded poll with a deadline; every process is killed on teardown (and,
on Linux, when the test process dies: ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

import httpx

#: How long a process gets to start and print its line.
START_TIMEOUT_S = 30.0
#: A grant refreshed less than this long ago is benched instead of refreshed again when its
#: fresh token is refused (the pool's fixed ``refresh_loop_guard``, 30 s, plus a margin).
REFRESH_LOOP_GUARD_S = 31.0


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Make the child get SIGKILL when the test process dies (Linux only; best effort)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_until(
    condition: Callable[[], Any], timeout: float, what: str, every: float = 0.05
) -> Any:
    """Poll ``condition`` until it returns a truthy value, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")
        time.sleep(every)


class Lines:
    """A process's stdout, read line by line in a thread (so reads can have deadlines)."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        thread.start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        self._queue.put(None)

    def next(self, timeout: float, what: str) -> str:
        """The next line, or AssertionError after ``timeout`` or at the end of the stream."""
        try:
            line = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}") from None
        if line is None:
            raise AssertionError(f"the process ended before {what}")
        self.seen.append(line)
        return line

    def until(self, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line (from now) matching ``predicate``."""
        deadline = time.monotonic() + timeout
        while True:
            line = self.next(max(0.0, deadline - time.monotonic()), what)
            if predicate(line):
                return line


def _stop(process: "subprocess.Popen[str]", grace: float = 5.0) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def _tail(path: str, limit: int = 4000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-limit:]
    except OSError:
        return ""


class FakeProvider:
    """`credpool fake-provider`: a fake OAuth/API provider on a loopback port."""

    def __init__(self, binary: str, workdir: str, grants: Sequence[str] = (), keys: Sequence[str] = ()) -> None:
        args = [binary, "fake-provider"]
        for label in grants:
            args += ["--grant", label]
        for key in keys:
            args += ["--key", key]
        self.stderr_path = os.path.join(workdir, "fake-provider.stderr")
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                args,
                stdin=subprocess.PIPE,  # closing it stops the fake
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=_die_with_parent,
            )
        assert self.process.stdout is not None
        try:
            line = Lines(self.process.stdout).next(START_TIMEOUT_S, "the fake provider's JSON line")
        except AssertionError as err:
            self.stop()
            raise AssertionError(f"{err}; stderr: {_tail(self.stderr_path)}") from None
        self.info: Dict[str, Any] = json.loads(line)
        self.base_url: str = self.info["base_url"]
        self.api_url: str = self.info["api_url"]
        self.token_url: str = self.info["token_url"]
        self.control_url: str = self.info["control_url"]
        self.hostport = self.base_url.split("://", 1)[1]
        self._http = httpx.Client(timeout=5.0, trust_env=False)

    def refresh_token(self, label: str) -> str:
        return str(self.info["grants"][label]["refresh_token"])

    def stats(self) -> Dict[str, int]:
        response = self._http.get(f"{self.control_url}/stats")
        response.raise_for_status()
        return {k: int(v) for k, v in response.json().items()}

    def expire_access_tokens(self) -> None:
        self._http.post(f"{self.control_url}/expire-access-tokens").raise_for_status()

    def api_key_mode(self, key: str, mode: str, retry_after_s: Optional[int] = None) -> None:
        body: Dict[str, Any] = {"key": key, "mode": mode}
        if retry_after_s is not None:
            body["retry_after_s"] = retry_after_s
        self._http.post(f"{self.control_url}/api-key-mode", json=body).raise_for_status()

    def stop(self) -> None:
        self._http_close()
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        _stop(self.process)

    def _http_close(self) -> None:
        http = getattr(self, "_http", None)
        if http is not None:
            http.close()


def _toml_str(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


class Serve:
    """`credpool serve` with a config written into a short temp dir.

    ``providers`` is a list of ``{"id": ..., "token_url"?: ..., "base_url"?: ..., "hosts"?:
    [...], "extra"?: {...}, "entries": [{"label": ..., "refresh_token"|"api_key": ...}]}``;
    secrets go to 0600 files.
    """

    def __init__(
        self,
        binary: str,
        workdir: str,
        providers: Sequence[Dict[str, Any]],
        lease_ttl_s: Optional[int] = None,
        tcp: bool = False,
    ) -> None:
        self.binary = binary
        self.tcp = tcp
        self.tcp_url: Optional[str] = None
        self.lease_token_file = os.path.join(workdir, "lease.token")
        self.workdir = workdir
        self.data_dir = os.path.join(workdir, "data")
        self.socket = os.path.join(workdir, "credpool.sock")
        self.config_path = os.path.join(workdir, "credpool.toml")
        lines = [
            f"data_dir = {_toml_str(self.data_dir)}",
            "allow_insecure_loopback = true",
            "",
            "[admin]",
            'listen = "127.0.0.1:0"',
            f"token_file = {_toml_str(os.path.join(workdir, 'admin.token'))}",
            "",
            "[data]",
            f"socket = {_toml_str(self.socket)}",
        ]
        if lease_ttl_s is not None:
            lines.append(f"lease_ttl_s = {lease_ttl_s}")
        if tcp:
            lines.append('listen = "127.0.0.1:0"')
            lines.append(f"token_file = {_toml_str(self.lease_token_file)}")
        for provider in providers:
            lines += ["", "[[providers]]", f"id = {_toml_str(provider['id'])}"]
            for key in ("token_url", "base_url"):
                if key in provider:
                    lines.append(f"{key} = {_toml_str(provider[key])}")
            if "hosts" in provider:
                lines.append("hosts = [" + ", ".join(_toml_str(h) for h in provider["hosts"]) + "]")
            for key, value in provider.get("extra", {}).items():
                lines.append(f"{key} = {json.dumps(value)}")
            for entry in provider["entries"]:
                label = entry["label"]
                lines += ["", "[[providers.entries]]", f"label = {_toml_str(label)}"]
                if "refresh_token" in entry:
                    path = self._secret_file(f"{provider['id']}-{label}.rt", entry["refresh_token"])
                    lines.append(f"refresh_token_file = {_toml_str(path)}")
                else:
                    path = self._secret_file(f"{provider['id']}-{label}.key", entry["api_key"])
                    lines.append(f"api_key_file = {_toml_str(path)}")
        with open(self.config_path, "w") as f:
            f.write("\n".join(lines) + "\n")
        self.process: Optional["subprocess.Popen[str]"] = None
        self.started_at = 0.0
        self.start()

    def _secret_file(self, name: str, value: str) -> str:
        path = os.path.join(self.workdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(value + "\n")
        return path

    def start(self) -> None:
        """Start the service and wait (bounded) until its data plane listens."""
        self.stderr_path = os.path.join(self.workdir, "serve.stderr")
        with open(self.stderr_path, "a") as stderr:
            self.process = subprocess.Popen(
                [self.binary, "serve", "--config", self.config_path],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=_die_with_parent,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info")},
            )
        assert self.process.stdout is not None
        self.lines = Lines(self.process.stdout)
        self.started_at = time.monotonic()
        try:
            self.lines.until(
                lambda line: "data plane on unix:" in line, START_TIMEOUT_S, "`data plane on unix:`"
            )
            if self.tcp:
                line = self.lines.until(
                    lambda line: "data plane on http://" in line, START_TIMEOUT_S,
                    "`data plane on http://`",
                )
                self.tcp_url = line.split("data plane on ", 1)[1].strip()
        except AssertionError as err:
            if self.process.poll() is None and os.path.exists(self.socket) and not self.tcp:
                return  # the line changed, but the socket is there
            self.stop()
            raise AssertionError(
                f"credpool serve did not start ({err}); stdout: {self.lines.seen}; "
                f"stderr: {_tail(self.stderr_path)}"
            ) from None

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after a grace period."""
        if self.process is not None:
            _stop(self.process)

    def kill(self) -> None:
        """SIGKILL, at once."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def stderr(self) -> str:
        return _tail(self.stderr_path)


class Worker:
    """A Python process running ``worker.py`` (speaks one JSON object per line)."""

    def __init__(self, workdir: str, *args: str) -> None:
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
        self.stderr_path = os.path.join(workdir, f"worker-{os.getpid()}-{id(self)}.stderr")
        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, script, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=_die_with_parent,
            )
        assert self.process.stdout is not None
        self.lines = Lines(self.process.stdout)

    def read(self, timeout: float, what: str) -> Dict[str, Any]:
        try:
            return dict(json.loads(self.lines.next(timeout, what)))
        except AssertionError as err:
            raise AssertionError(f"{err}; worker stderr: {_tail(self.stderr_path)}") from None

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)

    def close(self) -> None:
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.kill()


def short_tempdir() -> str:
    """A temp dir with a short path (a Unix socket's path holds at most 107 bytes)."""
    return tempfile.mkdtemp(prefix="cp-", dir="/tmp" if os.path.isdir("/tmp") else None)


def remove_tree(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)
