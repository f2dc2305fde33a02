#!/usr/bin/env python3
"""What a Python user pays to pick a credential: credpool (over its Unix socket) vs LiteLLM's Router.

One run measures, one thing at a time:

1. credpool from Python: ``credpool serve`` (target/release/credpool) with 3 OpenAI keys, then
   with 1,000 (997 added through the admin API); ``lease`` + ``release`` with the package's
   ``Client`` and ``AsyncClient``, with a bare httpx client, with the standard library's
   ``http.client``, and by hand on the socket (the floor); then 8 processes at once.
2. credpool from Rust: ``credpool bench --only data-plane --json``.
3. LiteLLM's Router with 3 and 1,000 deployments: the sync and async picks, per strategy, in
   process and with Redis (a ``redis-server`` this bench starts on a free loopback port).

``--runs N`` repeats the whole thing and reports the median of each number across runs. See
README.md beside this file for how to read the output. Usage (from the repo root)::

    clients/python/bench/run.sh --runs 3 [--json]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from typing import Any, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from report import build_report, print_table  # noqa: E402
from services import (  # noqa: E402
    BenchError,
    CredpoolServe,
    RedisServer,
    Teardown,
    run_command,
    run_worker,
)
from stats import merge_runs  # noqa: E402

DEFAULT_STRATEGIES = ["simple-shuffle", "usage-based-routing-v2", "least-busy"]
WORKER_TIMEOUT_S = 600.0

Measurements = Dict[str, Dict[str, Any]]


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    here = os.path.dirname(os.path.abspath(__file__))
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=3, help="whole runs; medians are reported (default 3)")
    p.add_argument("--json", action="store_true", help="also print one JSON object as the last line")
    p.add_argument("--repo", default=os.path.abspath(os.path.join(here, "..", "..", "..")))
    p.add_argument("--credpool-bin", help="default: <repo>/target/release/credpool")
    p.add_argument("--pairs", type=int, default=5000, help="timed lease+release pairs (default 5000)")
    p.add_argument("--warmup", type=int, default=500, help="untimed pairs/picks first (default 500)")
    p.add_argument("--procs", type=int, default=8, help="processes of the concurrent test (default 8)")
    p.add_argument("--window", type=float, default=3.0, help="seconds of the concurrent test (default 3)")
    p.add_argument("--big-keys", type=int, default=1000, help="the large pool's size (default 1000)")
    p.add_argument("--strategies", default=",".join(DEFAULT_STRATEGIES),
                   help="LiteLLM routing strategies (comma-separated)")
    p.add_argument("--picks", type=int, default=5000, help="timed LiteLLM picks at most (default 5000)")
    p.add_argument("--budget", type=float, default=2.5,
                   help="seconds per LiteLLM timed loop at most (≥ 50 picks always; default 2.5)")
    p.add_argument("--quick", action="store_true", help="tiny sizes: checks that everything runs")
    args = p.parse_args(argv)
    if args.quick:
        args.pairs, args.warmup, args.window, args.big_keys = 200, 20, 0.5, 50
        args.picks, args.budget = 100, 0.3
    if args.runs < 1 or args.big_keys <= 3:
        p.error("--runs must be ≥ 1 and --big-keys > 3")
    args.strategies = [s for s in args.strategies.split(",") if s]
    args.credpool_bin = os.path.abspath(args.credpool_bin or os.path.join(args.repo, "target", "release", "credpool"))
    return args


# -- preconditions and facts ----------------------------------------------------------------


def check_prerequisites(args: argparse.Namespace) -> Dict[str, str]:
    """One clear error for the first thing missing; the tools' paths otherwise."""
    if not os.access(args.credpool_bin, os.X_OK):
        raise BenchError(
            f"{args.credpool_bin} is missing: build it with `cargo build --release -p credpool-cli`"
        )
    redis = shutil.which("redis-server")
    if redis is None:
        raise BenchError("redis-server is not on PATH: `apt-get install -y redis-server` (Debian)")
    for module in ("credpool", "httpx", "litellm", "redis"):
        if importlib.util.find_spec(module) is None:
            raise BenchError(
                f"the Python module `{module}` is missing from {sys.executable}: run the bench "
                "through clients/python/bench/run.sh, which installs it in target/python-bench-venv"
            )
    return {"redis": redis}


def loadavg() -> List[float]:
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except OSError:
        return []


def dist_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


def git(repo: str, *args: str) -> str:
    try:
        return subprocess.run(
            ["git", "-C", repo, *args], capture_output=True, text=True, timeout=20
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def facts(args: argparse.Namespace, redis_bin: str) -> Dict[str, Any]:
    commit_time = git(args.repo, "log", "-1", "--format=%ct")
    binary_mtime = os.path.getmtime(args.credpool_bin)
    redis_version = run_command([redis_bin, "--version"], timeout=10).strip()
    cpu_model = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu_model = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    return {
        "machine": {
            "cores": os.cpu_count(),
            "cpu": cpu_model,
            "platform": platform.platform(),
        },
        "versions": {
            "python": platform.python_version(),
            "httpx": dist_version("httpx"),
            "httpcore": dist_version("httpcore"),
            "litellm": dist_version("litellm"),
            "redis_py": dist_version("redis"),
            "redis_server": next((w[2:] for w in redis_version.split() if w.startswith("v=")), redis_version),
            "credpool_commit": git(args.repo, "rev-parse", "HEAD"),
            "credpool_describe": git(args.repo, "describe", "--always", "--dirty"),
            "credpool_binary": args.credpool_bin,
            "credpool_binary_older_than_commit": bool(commit_time) and binary_mtime < float(commit_time),
        },
    }


# -- one run --------------------------------------------------------------------------------


def credpool_python(args: argparse.Namespace, out: Measurements) -> None:
    """credpool from Python: 3 keys, then 1,000 (added through the admin API)."""
    run_teardown = Teardown()
    try:
        serve = CredpoolServe(args.credpool_bin, run_teardown, keys=3)
        for keys in (3, args.big_keys):
            if keys != serve.keys:
                seconds = serve.add_keys(keys - serve.keys)
                out[f"credpool_admin/keys_{keys}/add_keys"] = {"seconds": round(seconds, 2), "added": keys - 3}
            progress(f"credpool from Python, {keys} keys: one connection each way …")
            single = run_worker(
                "py_credpool.py",
                {"mode": "single", "socket": serve.socket, "pairs": args.pairs, "warmup": args.warmup},
                WORKER_TIMEOUT_S,
                "the credpool Python worker",
            )
            for name, m in single.items():
                out[f"credpool_python/keys_{keys}/{name}"] = m
            for kind in ("client", "raw"):
                progress(f"credpool from Python, {keys} keys: {args.procs} processes ({kind}) …")
                out[f"credpool_python_{args.procs}_procs/keys_{keys}/{kind}"] = run_worker(
                    "py_credpool.py",
                    {
                        "mode": "multi", "kind": kind, "socket": serve.socket, "procs": args.procs,
                        "window_s": args.window, "warmup": max(1, args.warmup // 5),
                    },
                    WORKER_TIMEOUT_S,
                    f"the credpool {args.procs}-process worker",
                )
    finally:
        run_teardown.run()


def credpool_rust(args: argparse.Namespace, out: Measurements) -> None:
    progress("credpool from Rust: credpool bench --only data-plane …")
    command = [args.credpool_bin, "bench", "--only", "data-plane", "--json"]
    if args.quick:
        command.append("--quick")
    stdout = run_command(command, timeout=WORKER_TIMEOUT_S)
    last = [l for l in stdout.splitlines() if l.strip()][-1]
    data_plane = json.loads(last).get("data_plane")
    if not isinstance(data_plane, dict):
        raise BenchError("`credpool bench --only data-plane --json` printed no `data_plane` object")

    def us(m: Dict[str, Any]) -> Dict[str, Any]:
        return {
            "p50_us": round(m["p50_ns"] / 1000, 1),
            "p99_us": round(m["p99_ns"] / 1000, 1),
            "max_us": round(m["max_ns"] / 1000, 1),
            "ops_per_s": m.get("ops_per_s"),
        }

    out["credpool_rust/keys_3/pair_1_connection"] = us(data_plane["pair_1_connection"])
    out["credpool_rust/keys_3/health_1_connection"] = us(data_plane["floor_health_1_connection"])
    many = us(data_plane["pair_64_connections"])
    many["connections"] = data_plane.get("connections")
    many["ops_per_s"] = data_plane.get("pairs_per_s_64_connections", many["ops_per_s"])
    out["credpool_rust/keys_3/pair_64_connections"] = many


def litellm_router(args: argparse.Namespace, redis: RedisServer, out: Measurements, meta: Dict[str, Any]) -> None:
    for strategy in args.strategies:
        for keys in (3, args.big_keys):
            for mode in ("in_process", "redis"):
                progress(f"LiteLLM Router, {strategy}, {keys} deployments, {mode.replace('_', ' ')} …")
                if mode == "redis":
                    redis.flush()
                result = run_worker(
                    "py_litellm.py",
                    {
                        "strategy": strategy, "keys": keys,
                        "redis_port": redis.port if mode == "redis" else None,
                        "picks": args.picks, "warmup": args.warmup, "budget_s": args.budget,
                    },
                    WORKER_TIMEOUT_S,
                    f"the LiteLLM worker ({strategy}, {keys}, {mode})",
                )
                meta.update(result.pop("meta", {}))
                for call, m in result.items():
                    out[f"litellm/{strategy}/{mode}/keys_{keys}/{call}"] = m


def one_run(args: argparse.Namespace, redis: RedisServer, index: int) -> Dict[str, Any]:
    out: Measurements = {}
    litellm_meta: Dict[str, Any] = {}
    load_start = loadavg()
    started = time.monotonic()
    credpool_python(args, out)
    credpool_rust(args, out)
    litellm_router(args, redis, out, litellm_meta)
    return {
        "run": index,
        "seconds": round(time.monotonic() - started, 1),
        "loadavg_start": load_start,
        "loadavg_end": loadavg(),
        "litellm": litellm_meta,
        "measurements": out,
    }


_quiet = False


def progress(message: str) -> None:
    if not _quiet:
        print(f"bench: {message}", file=sys.stderr, flush=True)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    teardown = Teardown()
    teardown.install()
    try:
        tools = check_prerequisites(args)
        info = facts(args, tools["redis"])
        if info["versions"]["credpool_binary_older_than_commit"]:
            print(
                f"bench: warning: {args.credpool_bin} is older than the last commit "
                "(cargo build --release -p credpool-cli)",
                file=sys.stderr,
            )
        load_start = loadavg()
        redis = RedisServer(tools["redis"], teardown)
        runs = []
        for index in range(1, args.runs + 1):
            progress(f"run {index} of {args.runs} (load average {' '.join(map(str, loadavg()))})")
            runs.append(one_run(args, redis, index))
        load_end = loadavg()
    except BenchError as err:
        print(f"bench: {err}", file=sys.stderr)
        return 2
    finally:
        teardown.run()

    merged = merge_runs([r["measurements"] for r in runs])
    report = build_report(args, info, runs, merged, load_start, load_end)
    print_table(report)
    if args.json:
        print(json.dumps(report, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
