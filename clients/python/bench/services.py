"""The processes the bench runs: `credpool serve`, `redis-server`, and its own workers.

Every wait is a bounded poll with a deadline. Every child gets ``PR_SET_PDEATHSIG`` (it is
SIGKILLed if the bench dies), and :class:`Teardown` stops them all, in reverse order, on any
exit of the bench: normal, an exception, Ctrl-C, SIGTERM or SIGHUP.
"""

from __future__ import annotations

import base64
import ctypes
import json
import os
import queue
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import IO, Any, Callable, Dict, List, Optional, Sequence

START_TIMEOUT_S = 30.0
STOP_GRACE_S = 5.0


class BenchError(Exception):
    """A setup problem: printed as one line, exit status 2."""


def die_with_parent() -> None:  # runs in the child, between fork and exec
    """SIGKILL this process when its parent dies (Linux; best effort elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def wait_until(condition: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    """Poll ``condition`` until it is truthy, for at most ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def tail(path: str, limit: int = 2000) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()[-limit:]
    except OSError:
        return ""


def stop_process(process: "subprocess.Popen[Any]", grace: float = STOP_GRACE_S) -> None:
    """SIGTERM, then SIGKILL after ``grace`` seconds."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(grace)


class Teardown:
    """A stack of cleanups run once, in reverse order, however the bench ends.

    ``install()`` turns SIGTERM and SIGHUP into ``SystemExit`` (SIGINT already raises
    ``KeyboardInterrupt``), so ``finally`` blocks run and children are stopped.
    """

    def __init__(self) -> None:
        self._steps: List[Callable[[], None]] = []

    def add(self, step: Callable[[], None]) -> None:
        self._steps.append(step)

    def install(self) -> None:
        def on_signal(signum: int, _frame: Any) -> None:
            raise SystemExit(128 + signum)

        for sig in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, on_signal)

    def run(self) -> None:
        while self._steps:
            step = self._steps.pop()
            try:
                step()
            except Exception as err:  # a cleanup failing must not stop the next ones
                print(f"bench: cleanup step failed: {err}", file=sys.stderr)


def temp_dir(teardown: Teardown, prefix: str) -> str:
    """A temp dir with a short path (a Unix socket path holds at most 107 bytes), removed
    at teardown."""
    path = tempfile.mkdtemp(prefix=prefix, dir="/tmp" if os.path.isdir("/tmp") else None)
    teardown.add(lambda: shutil.rmtree(path, ignore_errors=True))
    return path


def secret_file(path: str, value: str) -> str:
    """Write ``value`` to a new file of mode 0600."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value + "\n")
    return path


class Lines:
    """A process's stdout, read in a thread so reads can have deadlines."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: "queue.Queue[Optional[str]]" = queue.Queue()
        self.seen: List[str] = []
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        try:
            for line in stream:
                self._queue.put(line.rstrip("\n"))
        except (OSError, ValueError):
            pass
        self._queue.put(None)

    def until(self, predicate: Callable[[str], bool], deadline: float, what: str) -> str:
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchError(f"timed out waiting for {what}") from None
            if line is None:
                raise BenchError(f"the process ended before {what}")
            self.seen.append(line)
            if predicate(line):
                return line


def _toml(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


# -- credpool serve -------------------------------------------------------------------------


class CredpoolServe:
    """`credpool serve` in its own temp dir, with ``keys`` OpenAI API keys in 0600 files."""

    def __init__(self, binary: str, teardown: Teardown, keys: int) -> None:
        self.workdir = temp_dir(teardown, "cpb-")
        self.data_dir = os.path.join(self.workdir, "data")
        self.socket = os.path.join(self.data_dir, "credpool.sock")
        self.token_file = os.path.join(self.workdir, "admin.token")
        self.stderr_path = os.path.join(self.workdir, "serve.stderr")
        self.keys = keys
        master = secret_file(
            os.path.join(self.workdir, "master.key"),
            base64.b64encode(secrets.token_bytes(32)).decode(),
        )
        lines = [
            f"data_dir = {_toml(self.data_dir)}",
            f"master_key_file = {_toml(master)}",
            "",
            "[admin]",
            'listen = "127.0.0.1:0"',
            f"token_file = {_toml(self.token_file)}",
            "",
            "[[providers]]",
            'id = "openai"',
        ]
        for i in range(keys):
            path = secret_file(
                os.path.join(self.workdir, f"openai-k{i}.key"), f"sk-bench-{i:04d}-{secrets.token_hex(8)}"
            )
            lines += ["", "[[providers.entries]]", f'label = "k{i}"', f"api_key_file = {_toml(path)}"]
        self.config = os.path.join(self.workdir, "credpool.toml")
        with open(self.config, "w") as f:
            f.write("\n".join(lines) + "\n")

        with open(self.stderr_path, "w") as stderr:
            self.process = subprocess.Popen(
                [binary, "serve", "--config", self.config],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                preexec_fn=die_with_parent,
                env={**os.environ, "RUST_LOG": "warn"},
            )
        teardown.add(self.stop)
        assert self.process.stdout is not None
        out = Lines(self.process.stdout)
        deadline = time.monotonic() + START_TIMEOUT_S
        self.admin_url = ""
        try:
            while not (self.admin_url and os.path.exists(self.socket)):
                line = out.until(
                    lambda l: "listening on http://" in l or "data plane on unix:" in l,
                    deadline,
                    "`credpool serve` to print `listening on http://` and `data plane on unix:`",
                )
                if "listening on http://" in line:
                    self.admin_url = line.split("listening on ", 1)[1].strip()
                else:
                    self.socket = line.split("data plane on unix:", 1)[1].strip()
        except BenchError as err:
            self.stop()
            raise BenchError(
                f"credpool serve did not start: {err}; stdout: {out.seen}; stderr: {tail(self.stderr_path)}"
            ) from None

    def admin_token(self) -> str:
        with open(self.token_file, encoding="utf-8") as f:
            return f.read().strip()

    def add_keys(self, count: int) -> float:
        """Add ``count`` more API keys through the admin API; returns the seconds it took."""
        import httpx

        started = time.perf_counter()
        with httpx.Client(
            base_url=self.admin_url,
            headers={"authorization": f"Bearer {self.admin_token()}"},
            timeout=30.0,
            trust_env=False,
        ) as admin:
            for i in range(self.keys, self.keys + count):
                r = admin.post(
                    "/v1/providers/openai/entries",
                    json={"label": f"k{i}", "api_key": f"sk-bench-{i:04d}-{secrets.token_hex(8)}"},
                )
                if r.status_code != 201:
                    raise BenchError(f"admin add of key k{i} answered {r.status_code}: {r.text[:200]}")
            snapshot = admin.get("/v1/providers/openai/entries").json()
        self.keys += count
        held = len(snapshot.get("entries", []))
        if held != self.keys:
            raise BenchError(f"the pool holds {held} entries after adding, expected {self.keys}")
        return time.perf_counter() - started

    def stop(self) -> None:
        stop_process(self.process)


# -- redis-server ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def redis_command(port: int, *args: str, timeout: float = 2.0) -> bytes:
    """One RESP command over a fresh connection; the raw reply (enough for PING/FLUSHALL)."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(payload.encode())
        return s.recv(65536)


class RedisServer:
    """Debian's `redis-server` on a free loopback port, no persistence, in a temp dir."""

    def __init__(self, binary: str, teardown: Teardown) -> None:
        self.workdir = temp_dir(teardown, "cpb-redis-")
        self.log = os.path.join(self.workdir, "redis.log")
        last_error = ""
        for _attempt in range(3):  # a free port can be taken between the probe and the bind
            self.port = free_port()
            self.process = subprocess.Popen(
                [
                    binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                    "--appendonly", "no", "--dir", self.workdir, "--logfile", self.log,
                    "--daemonize", "no", "--protected-mode", "yes",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                preexec_fn=die_with_parent,
            )
            try:
                wait_until(self._ready, START_TIMEOUT_S, f"redis-server on 127.0.0.1:{self.port}")
                teardown.add(self.stop)
                return
            except BenchError as err:
                last_error = f"{err}; log: {tail(self.log, 600)}"
                self.stop()
        raise BenchError(f"redis-server did not start: {last_error}")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise BenchError(f"redis-server exited with {self.process.returncode}")
        try:
            return redis_command(self.port, "PING", timeout=0.5).startswith(b"+PONG")
        except OSError:
            return False

    def flush(self) -> None:
        reply = redis_command(self.port, "FLUSHALL")
        if not reply.startswith(b"+OK"):
            raise BenchError(f"redis FLUSHALL answered {reply[:80]!r}")

    def stop(self) -> None:
        stop_process(self.process)


# -- workers --------------------------------------------------------------------------------


def run_worker(script: str, args: Dict[str, Any], timeout: float, what: str) -> Dict[str, Any]:
    """Run ``python script '<json args>'`` in a fresh interpreter; its last stdout line is JSON."""
    here = os.path.dirname(os.path.abspath(__file__))
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(
            [sys.executable, os.path.join(here, script), json.dumps(args)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            preexec_fn=die_with_parent,
        )
        try:
            out, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            raise BenchError(f"{what}: no answer within {timeout:.0f} s") from None
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0:
            err.seek(0)
            raise BenchError(f"{what} failed (exit {process.returncode}): {err.read()[-3000:]}")
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines:
        raise BenchError(f"{what} printed nothing")
    result: Dict[str, Any] = json.loads(lines[-1])
    return result


def run_command(args: Sequence[str], timeout: float) -> str:
    try:
        done = subprocess.run(
            list(args), capture_output=True, text=True, timeout=timeout, preexec_fn=die_with_parent
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        raise BenchError(f"`{' '.join(args)}` failed: {err}") from None
    if done.returncode != 0:
        raise BenchError(f"`{' '.join(args)}` exited {done.returncode}: {done.stderr[-2000:]}")
    return done.stdout
