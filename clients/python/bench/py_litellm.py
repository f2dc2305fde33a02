"""LiteLLM's Router: what picking a deployment costs, measured in a fresh process.

Run by bench.py as ``python py_litellm.py '<json args>'`` with ``{"strategy", "keys",
"redis_port" (null: in-process only), "picks", "warmup", "budget_s"}``; prints one JSON object.

One Router holds ``keys`` deployments of one ``model_name``, each an ``openai/gpt-4o-mini``
with its own API key and ``api_base`` http://127.0.0.1:9/v1 (discard: nothing is ever sent;
a pick sends nothing anyway). Measured, each after a warm-up:

- ``sync``: ``router.get_available_deployment(model=...)``;
- ``async``: ``await router.async_get_available_deployment(model=..., request_kwargs={},
  messages=[...])`` (deprecated in this LiteLLM in favour of ``select``; its shim costs a
  frame walk and a ``warnings.warn`` per call);
- ``select``: ``await router.select(model, {}, messages=[...])``, the replacement.

With Redis, the server's ``INFO commandstats`` is reset before and read after each timed loop:
``redis_cmds_per_pick`` says whether the pick itself talks to Redis.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import sys
import time
import warnings
from typing import Any, Callable, Dict, List, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from stats import summarize, time_loop  # noqa: E402

MODEL = "gpt-4o-mini"
MESSAGES = [{"role": "user", "content": "hi"}]
#: Redis commands the bench itself sends (stats), not counted as the pick's.
OWN_COMMANDS = ("cmdstat_config|resetstat", "cmdstat_info", "cmdstat_config", "cmdstat_hello", "cmdstat_client|setinfo")


def quiet_litellm() -> None:
    """No network at import (the model cost map is LiteLLM's bundled copy), no log noise."""
    os.environ["LITELLM_OFFLINE_MODE"] = "true"
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    warnings.simplefilter("ignore", DeprecationWarning)  # as for any library caller
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.ERROR)


def model_list(keys: int) -> List[Dict[str, Any]]:
    return [
        {
            "model_name": MODEL,
            "litellm_params": {
                "model": f"openai/{MODEL}",
                "api_key": f"sk-bench-{i:04d}",
                "api_base": "http://127.0.0.1:9/v1",
            },
        }
        for i in range(keys)
    ]


class RedisStats:
    """Commands the Redis server ran between ``reset()`` and ``read()``."""

    def __init__(self, port: Optional[int]) -> None:
        self.client = None
        if port is not None:
            import redis

            self.client = redis.Redis(host="127.0.0.1", port=port)

    def reset(self) -> None:
        if self.client is not None:
            self.client.config_resetstat()

    def read(self, picks: int) -> Dict[str, Any]:
        if self.client is None:
            return {}
        stats = self.client.info("commandstats")
        calls = {
            k.removeprefix("cmdstat_"): int(v["calls"])
            for k, v in stats.items()
            if k not in OWN_COMMANDS and isinstance(v, dict)
        }
        return {
            "redis_cmds_per_pick": round(sum(calls.values()) / max(1, picks), 3),
            "redis_cmds": calls,
        }


def check_pick(picked: Any) -> None:
    if not isinstance(picked, dict) or not str(
        picked.get("litellm_params", {}).get("api_key", "")
    ).startswith("sk-bench-"):
        raise RuntimeError(f"the router picked something unexpected: {type(picked).__name__}")


def warm(op: Callable[[], Any], count: int, budget_s: float) -> None:
    stop_at = time.monotonic() + budget_s
    for i in range(count):
        op()
        if time.monotonic() >= stop_at and i >= 4:
            break


async def time_async(op: Callable[[], Any], count: int, budget_s: float, min_count: int = 50) -> Dict[str, Any]:
    ns: List[int] = []
    clock = time.perf_counter_ns
    start = clock()
    stop_at = start + int(budget_s * 1e9)
    for i in range(count):
        t0 = clock()
        await op()
        t1 = clock()
        ns.append(t1 - t0)
        if t1 >= stop_at and i + 1 >= min_count:
            break
    return summarize(ns, (clock() - start) / 1e9)


async def measure_async(router: Any, args: Dict[str, Any], stats: RedisStats) -> Dict[str, Any]:
    picks, warmup, budget = int(args["picks"]), int(args["warmup"]), float(args["budget_s"])
    out: Dict[str, Any] = {}
    calls = {
        "async": lambda: router.async_get_available_deployment(
            model=MODEL, request_kwargs={}, messages=MESSAGES
        ),
        "select": lambda: router.select(MODEL, {}, messages=MESSAGES),
    }
    for name, op in calls.items():
        check_pick(await op())
        stop_at = time.monotonic() + min(0.5, budget)
        for i in range(warmup):
            await op()
            if time.monotonic() >= stop_at and i >= 4:
                break
        gc.collect()
        stats.reset()
        result = await time_async(op, picks, budget)
        result.update(stats.read(result["n"]))
        out[name] = result
    try:
        router.retire()  # inside the loop: its background tasks end with it
    except Exception:  # a Router without retire(): the process ends anyway
        pass
    return out


def main() -> None:
    args = json.loads(sys.argv[1])
    quiet_litellm()
    started = time.perf_counter()
    import litellm
    from litellm import Router

    import_s = time.perf_counter() - started
    litellm.telemetry = False
    litellm.suppress_debug_info = True

    redis_port: Optional[int] = args.get("redis_port")
    kwargs: Dict[str, Any] = {"routing_strategy": args["strategy"]}
    if redis_port is not None:
        kwargs.update(redis_host="127.0.0.1", redis_port=int(redis_port))
    started = time.perf_counter()
    router = Router(model_list=model_list(int(args["keys"])), **kwargs)
    build_s = time.perf_counter() - started
    stats = RedisStats(redis_port)

    picks, warmup, budget = int(args["picks"]), int(args["warmup"]), float(args["budget_s"])
    out: Dict[str, Any] = {}

    def sync_pick() -> Any:
        return router.get_available_deployment(model=MODEL)

    check_pick(sync_pick())
    warm(sync_pick, warmup, min(0.5, budget))
    gc.collect()
    stats.reset()
    out["sync"] = time_loop(sync_pick, picks, budget)
    out["sync"].update(stats.read(out["sync"]["n"]))
    out["sync"]["router_build_s"] = round(build_s, 3)

    out.update(asyncio.run(measure_async(router, args, stats)))
    out["meta"] = {
        "litellm": getattr(litellm, "version", None) or _dist_version("litellm"),
        "import_s": round(import_s, 2),
        "router_build_s": round(build_s, 3),
        "core": type(getattr(router, "_core", None)).__name__,
    }
    print(json.dumps(out))


def _dist_version(name: str) -> Optional[str]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return None


if __name__ == "__main__":
    main()
