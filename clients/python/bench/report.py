"""The bench's report: the JSON object (nested results, ratios, targets) and the table."""

from __future__ import annotations

import argparse
from typing import Any, Dict, List, Optional

Measurements = Dict[str, Dict[str, Any]]

#: The LiteLLM strategy whose pick reads Redis on every call (in-flight counts shared by all
#: instances): the like-for-like peer of a lease from a service shared by all processes.
REDIS_PEER_STRATEGY = "least-busy"
#: LiteLLM's default strategy, for the in-process comparison.
DEFAULT_STRATEGY = "simple-shuffle"

PY_ROWS = [
    ("client", "credpool.Client (the package)"),
    ("async_client", "credpool.AsyncClient"),
    ("httpx", "bare httpx.Client, same 2 requests"),
    ("stdlib", "stdlib http.client on AF_UNIX"),
    ("raw", "raw socket by hand (FLOOR)"),
    ("raw_health", "raw GET /v1/health (1 round trip)"),
]


def nest(flat: Measurements) -> Dict[str, Any]:
    """``{"a/b/c": m}`` → ``{"a": {"b": {"c": m}}}``."""
    root: Dict[str, Any] = {}
    for name, m in flat.items():
        node = root
        *path, leaf = name.split("/")
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = m
    return root


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    if a is None or b is None or b == 0:
        return None
    return round(a / b, 3)


def build_report(
    args: argparse.Namespace,
    info: Dict[str, Any],
    runs: List[Dict[str, Any]],
    merged: Measurements,
    load_start: List[float],
    load_end: List[float],
) -> Dict[str, Any]:
    def get(name: str, field: str = "p50_us") -> Optional[float]:
        value = merged.get(name, {}).get(field)
        return float(value) if isinstance(value, (int, float)) else None

    big = args.big_keys
    sizes = [3, big]
    py = lambda keys, what, field="p50_us": get(f"credpool_python/keys_{keys}/{what}", field)  # noqa: E731

    ratios: Dict[str, Any] = {}
    for keys in sizes:
        client, httpx_, stdlib, raw = py(keys, "client"), py(keys, "httpx"), py(keys, "stdlib"), py(keys, "raw")
        where: Dict[str, Any] = {
            "python_pair_p50_us": client,
            "floor_pair_p50_us": raw,
            "python_pair_over_floor": _ratio(client, raw),
            "share_of_pair_above_floor": _ratio(None if client is None or raw is None else client - raw, client),
            "share_in_httpx": _ratio(None if httpx_ is None or raw is None else httpx_ - raw, client),
            "share_in_credpool_package": _ratio(None if client is None or httpx_ is None else client - httpx_, client),
            "stdlib_http_client_speedup": _ratio(client, stdlib),
            "raw_framing_speedup": _ratio(client, raw),
            "vs_litellm": {},
        }
        for strategy in args.strategies:
            base = f"litellm/{strategy}"
            where["vs_litellm"][strategy] = {
                "over_async_pick_redis": _ratio(client, get(f"{base}/redis/keys_{keys}/async")),
                "over_select_redis": _ratio(client, get(f"{base}/redis/keys_{keys}/select")),
                "over_async_pick_in_process": _ratio(client, get(f"{base}/in_process/keys_{keys}/async")),
                "over_sync_pick_in_process": _ratio(client, get(f"{base}/in_process/keys_{keys}/sync")),
                "redis_cmds_per_async_pick": get(f"{base}/redis/keys_{keys}/async", "redis_cmds_per_pick"),
                "redis_cmds_per_sync_pick": get(f"{base}/redis/keys_{keys}/sync", "redis_cmds_per_pick"),
            }
        ratios[f"keys_{keys}"] = where

    rust_p50 = get("credpool_rust/keys_3/pair_1_connection")
    rust_rate = get("credpool_rust/keys_3/pair_64_connections", "ops_per_s")
    targets: Dict[str, Any] = {
        "rust_pair_p50_le_50us": _target(rust_p50, 50.0, "le", "µs"),
        "rust_64_connections_ge_50000_per_s": _target(rust_rate, 50_000.0, "ge", "pairs/s"),
    }
    for keys in sizes:
        peer = REDIS_PEER_STRATEGY if REDIS_PEER_STRATEGY in args.strategies else args.strategies[-1]
        vs = ratios[f"keys_{keys}"]["vs_litellm"]
        targets[f"python_pair_over_litellm_async_pick_redis_le_0.5_keys_{keys}"] = dict(
            _target(vs.get(peer, {}).get("over_async_pick_redis"), 0.5, "le", "×"), strategy=peer
        )
        default = DEFAULT_STRATEGY if DEFAULT_STRATEGY in args.strategies else args.strategies[0]
        targets[f"python_pair_over_litellm_sync_pick_in_process_le_2_keys_{keys}"] = dict(
            _target(vs.get(default, {}).get("over_sync_pick_in_process"), 2.0, "le", "×"), strategy=default
        )

    litellm_meta = next((r["litellm"] for r in runs if r.get("litellm")), {})
    return {
        "bench": "credpool (Python, over the Unix socket) vs LiteLLM Router: picking a credential",
        "config": {
            "runs": args.runs, "pairs": args.pairs, "warmup": args.warmup, "procs": args.procs,
            "window_s": args.window, "big_keys": big, "strategies": args.strategies,
            "litellm_picks_max": args.picks, "litellm_budget_s": args.budget, "quick": args.quick,
            "statistic": "per measurement: p50/p99 of each run, then the median of those across runs",
        },
        "machine": {
            **info["machine"],
            "loadavg_start": load_start,
            "loadavg_end": load_end,
            "runs": [
                {"run": r["run"], "seconds": r["seconds"], "loadavg_start": r["loadavg_start"],
                 "loadavg_end": r["loadavg_end"]}
                for r in runs
            ],
        },
        "versions": {**info["versions"], "litellm_router_core": litellm_meta.get("core")},
        "results": nest(merged),
        "ratios": ratios,
        "targets": targets,
        "per_run": [nest(r["measurements"]) for r in runs],
    }


def _target(value: Optional[float], limit: float, how: str, unit: str) -> Dict[str, Any]:
    met = None if value is None else (value <= limit if how == "le" else value >= limit)
    return {"value": value, "target": f"{'≤' if how == 'le' else '≥'} {limit:g} {unit}", "met": met}


# -- the table ------------------------------------------------------------------------------


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if digits == 0 or (value >= 10_000 and value.is_integer()):
            return f"{value:,.0f}"
        return f"{value:,.{digits}f}"
    return f"{value:,}"


def _row(label: str, m: Optional[Dict[str, Any]], extra: str = "") -> str:
    if not m:
        return f"  {label:<58} {'(not measured)':>10}"
    return (
        f"  {label:<58} {_fmt(m.get('p50_us')):>10} {_fmt(m.get('p99_us')):>10} "
        f"{_fmt(m.get('ops_per_s')):>10} {_fmt(m.get('n')):>7}  {extra}"
    ).rstrip()


def _header(title: str, rate: str = "ops/s") -> List[str]:
    return [
        "",
        title,
        f"  {'':<58} {'p50 µs':>10} {'p99 µs':>10} {rate:>10} {'n':>7}",
    ]


def print_table(report: Dict[str, Any]) -> None:
    res = report["results"]
    cfg = report["config"]
    big = cfg["big_keys"]
    lines: List[str] = []
    m = report["machine"]
    v = report["versions"]
    lines.append(f"credpool vs LiteLLM: picking a credential from Python — median of {cfg['runs']} run(s)")
    lines.append(
        f"machine: {m['cores']} cores ({m['cpu']}); load average at start {m['loadavg_start']}, "
        f"at end {m['loadavg_end']}"
    )
    for r in m["runs"]:
        lines.append(f"  run {r['run']}: {r['seconds']} s, load {r['loadavg_start']} → {r['loadavg_end']}")
    lines.append(
        f"versions: python {v['python']}, httpx {v['httpx']}, litellm {v['litellm']} "
        f"(router core {v.get('litellm_router_core')}), redis-server {v['redis_server']}, "
        f"redis-py {v['redis_py']}, credpool {v['credpool_describe']}"
    )

    py = res.get("credpool_python", {})
    for keys in (3, big):
        lines += _header(f"credpool from Python — lease + release, one connection, {keys} keys", "pairs/s")
        for what, label in PY_ROWS:
            lines.append(_row(label, py.get(f"keys_{keys}", {}).get(what)))
    multi_key = next((k for k in res if k.startswith("credpool_python_") and k.endswith("_procs")), None)
    if multi_key:
        procs = cfg["procs"]
        lines += _header(f"credpool from Python — {procs} processes at once (per-pair latency; total pairs/s)", "pairs/s")
        for keys in (3, big):
            for what, label in (("client", "credpool.Client"), ("raw", "raw socket (floor)")):
                lines.append(_row(f"{label}, {keys} keys", res[multi_key].get(f"keys_{keys}", {}).get(what)))
    admin = res.get("credpool_admin", {}).get(f"keys_{big}", {}).get("add_keys")
    if admin:
        lines.append(f"  (adding {admin['added']} keys through the admin API took {admin['seconds']} s)")

    rust = res.get("credpool_rust", {}).get("keys_3", {})
    lines += _header("credpool from Rust — credpool bench --only data-plane (in-process service, 3 keys)", "pairs/s")
    lines.append(_row("lease + release, 1 connection", rust.get("pair_1_connection")))
    lines.append(_row("GET /v1/health, 1 connection (its floor)", rust.get("health_1_connection")))
    lines.append(_row(f"lease + release, {rust.get('pair_64_connections', {}).get('connections', 64)} connections",
                      rust.get("pair_64_connections")))

    lite = res.get("litellm", {})
    for strategy in cfg["strategies"]:
        lines += _header(f"LiteLLM Router — {strategy}: one pick", "picks/s")
        for mode in ("in_process", "redis"):
            for keys in (3, big):
                for call, label in (("sync", "get_available_deployment()"),
                                    ("async", "await async_get_available_deployment()"),
                                    ("select", "await select()")):
                    mm = lite.get(strategy, {}).get(mode, {}).get(f"keys_{keys}", {}).get(call)
                    extra = ""
                    if mm and mode == "redis":
                        extra = f"redis cmds/pick {_fmt(mm.get('redis_cmds_per_pick'), 2)}"
                    where = "in-proc" if mode == "in_process" else "Redis"
                    lines.append(_row(f"{where:<7} {keys:>4} dep. {label}", mm, extra))

    lines.append("")
    lines.append("ratios (credpool.Client lease + release p50 ÷ the other's p50; lower is better for credpool)")
    for keys_name, r in report["ratios"].items():
        lines.append(
            f"  {keys_name}: Python pair {_fmt(r['python_pair_p50_us'])} µs = {_fmt(r['python_pair_over_floor'], 2)}× "
            f"the raw floor {_fmt(r['floor_pair_p50_us'])} µs; of the pair, "
            f"{_pct(r['share_in_httpx'])} is httpx, {_pct(r['share_in_credpool_package'])} the package's own code; "
            f"stdlib http.client would be {_fmt(r['stdlib_http_client_speedup'], 2)}× faster, raw framing "
            f"{_fmt(r['raw_framing_speedup'], 2)}×"
        )
        for strategy, vs in r["vs_litellm"].items():
            lines.append(
                f"    vs {strategy:<24} async+Redis {_fmt(vs['over_async_pick_redis'], 2):>6}  "
                f"select+Redis {_fmt(vs['over_select_redis'], 2):>6}  "
                f"async in-proc {_fmt(vs['over_async_pick_in_process'], 2):>6}  "
                f"sync in-proc {_fmt(vs['over_sync_pick_in_process'], 2):>6}  "
                f"(Redis cmds per async pick {_fmt(vs['redis_cmds_per_async_pick'], 2)})"
            )
    lines.append("")
    lines.append("targets")
    for name, t in report["targets"].items():
        met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        strategy = f" [{t['strategy']}]" if "strategy" in t else ""
        lines.append(f"  {name}{strategy}: {_fmt(t['value'], 3 if t['value'] is not None and t['value'] < 100 else 0)} (target {t['target']}): {met}")
    print("\n".join(lines), flush=True)


def _pct(share: Optional[float]) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"
