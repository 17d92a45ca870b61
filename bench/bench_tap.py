"""The upstream tap's benchmarks (issue 21), each a ratio within one run.

1. Relay cost: the real CLI read directly (no server), its upstream the fake directly or the
   tap (in a process of its own, in front of the fake): time to first token of follow-up
   turns (p50, the difference is what the tap adds) and request to last byte of a 3000-chunk
   answer (direct / tap, the relay's share). The same at the HTTP level, with no CLI.
2. New conversations through the server (warm spares) against follow-ups and a cold
   ``claude -p``: TTFT medians; then 8 new conversations at once with a spare for each
   against 8 concurrent follow-ups, p95 TTFT; also with WARM_SPARES=off (before).
3. Memory: the server with and without the tap, a warmed spare against an unwarmed one.
4. The tap's upstream client, ours (tap/upstream.py) against aiohttp's (bench/aiohttp_upstream.py,
   issue 29): two real taps in processes of their own in front of the same fake, one with each
   client, read in turn with the fake directly: relay share of a 3000-chunk answer, added time
   to first byte of a short one (p50, p95), and whether 20 chunks 20 ms apart arrive apart.

    python bench/bench_tap.py                  # about 5 minutes on 2 cores
    python bench/bench_tap.py upstream-client  # 4. alone, about a minute
    python bench/bench_tap.py tap URL [aiohttp]  # (internal) a tap in front of URL; prints its base URL
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import itertools

import httpx
import psutil
from common import (
    TAG_VAR,
    DirectCli,
    FakeProcess,
    astream_chat,
    direct_launcher,
    marker,
    median,
    memory,
    percentile,
    stream_chat,
)
from harness import BridgeServer, find_test_cli

from claude_cli_bridge.cli.profile import Profile

N_TTFT = 15
N_RELAY = 15
LONG = 3000
SHORT = marker(3)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- a tap in a process of its own --------------------------------------------------------
def _tap_main(upstream: str, client: str = "ours") -> None:
    from claude_cli_bridge.tap import Tap, TapSettings

    if client.startswith("aiohttp"):  # the same tap, its upstream side aiohttp's (issue 29)
        from aiohttp_upstream import client_class

        from claude_cli_bridge.tap import server

        server.UpstreamClient = client_class(once=client == "aiohttp-once")  # type: ignore[misc, assignment]

    async def serve() -> None:
        tap = Tap(TapSettings(upstream=upstream), {})
        await tap.start()
        print(tap.base_url(), flush=True)
        await asyncio.to_thread(sys.stdin.read)  # until the benchmark closes our stdin
        await tap.close()

    asyncio.run(serve())


class TapProcess(FakeProcess):
    def __init__(self, upstream: str, env: dict[str, str], client: str = "ours"):
        import subprocess

        self.proc = subprocess.Popen(
            [sys.executable, __file__, "tap", upstream, client],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=env,
            text=True,
        )
        self.base_url = self.proc.stdout.readline().strip()


# -- 1. relay cost ------------------------------------------------------------------------
def http_level(fake_url: str, tap_url: str) -> dict[str, Any]:
    """TTFB of a short streamed answer and request to last byte of a long one, no CLI."""

    # TCP_NODELAY as the CLI's Node client has it: the request's headers and body go out at once.
    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    clients = {
        base: httpx.Client(timeout=60, transport=httpx.HTTPTransport(socket_options=nodelay))
        for base in (fake_url, tap_url)
    }

    def one(base: str, chunks: int) -> tuple[float, float]:
        body = {
            "model": "m",
            "max_tokens": 10,
            "stream": True,
            "messages": [{"role": "user", "content": marker(chunks)}],
        }
        started = time.perf_counter()
        first = None
        with clients[base].stream("POST", base + "/v1/messages", json=body) as r:
            for _ in r.iter_raw():
                first = first or time.perf_counter()
        return (first or started) - started, time.perf_counter() - started

    out: dict[str, Any] = {}
    for base in (fake_url, tap_url):  # connections and caches warm
        one(base, 3)
    ttfb = {"direct": [], "tap": []}
    last = {"direct": [], "tap": []}
    for _ in range(30):
        for name, base in (("direct", fake_url), ("tap", tap_url)):
            ttfb[name].append(one(base, 3)[0])
    for _ in range(N_RELAY):
        for name, base in (("direct", fake_url), ("tap", tap_url)):
            last[name].append(one(base, LONG)[1])
    out["ttfb_p50_ms"] = {k: round(median(v) * 1000, 2) for k, v in ttfb.items()}
    out["ttfb_added_ms"] = round((median(ttfb["tap"]) - median(ttfb["direct"])) * 1000, 2)
    out["last_byte_median_ms"] = {k: round(median(v) * 1000, 1) for k, v in last.items()}
    out["relay_share"] = round(median(last["direct"]) / median(last["tap"]), 3)
    for client in clients.values():
        client.close()
    return out


def cli_level(launcher, tap_url: str, fake_url: str) -> dict[str, Any]:
    """The real CLI, upstream direct or through the tap: follow-up TTFT and the long relay."""
    profile = Profile(model="sonnet")
    procs = {
        "direct": DirectCli(launcher, profile, extra_env={"ANTHROPIC_BASE_URL": fake_url}),
        "tap": DirectCli(launcher, profile, extra_env={"ANTHROPIC_BASE_URL": tap_url}),
    }
    try:
        for proc in procs.values():
            proc.turn(f"{SHORT} first turn")
        ttft = {"direct": [], "tap": []}
        last = {"direct": [], "tap": []}
        for i in range(N_TTFT):
            for name, proc in procs.items():
                ttft[name].append(proc.turn(f"{SHORT} follow-up {i}")["ttft"])
        for i in range(N_RELAY):
            for name, proc in procs.items():
                last[name].append(proc.turn(f"{marker(LONG)} long {i}")["last"])
    finally:
        for proc in procs.values():
            proc.stop()
    return {
        "follow_up_ttft_p50_ms": {k: round(median(v) * 1000, 1) for k, v in ttft.items()},
        "ttft_added_ms": round((median(ttft["tap"]) - median(ttft["direct"])) * 1000, 2),
        "last_byte_median_ms": {k: round(median(v) * 1000, 1) for k, v in last.items()},
        "relay_share": round(median(last["direct"]) / median(last["tap"]), 3),
    }


# -- 2. new conversations through the server -----------------------------------------------
def wait_spares(server: BridgeServer, n: int, timeout: float = 90) -> int:
    deadline = time.monotonic() + timeout
    pool = server.health()["pool"]
    while time.monotonic() < deadline:
        pool = server.health()["pool"]
        if pool["spare"] >= n and pool["starting"] == 0 and pool["busy"] == 0:
            break
        time.sleep(0.1)
    return pool["spare"]


def server_ttft(server: BridgeServer, launcher, tag: str) -> dict[str, Any]:
    client = httpx.Client(timeout=120)
    new, follow, cold = [], [], []
    try:
        for i in range(N_TTFT):
            wait_spares(server, 1)
            messages = [{"role": "user", "content": f"{SHORT} new {tag} {i}"}]
            first = stream_chat(client, server.openai_url, messages, key=f"{tag}-{i}")
            new.append(first["ttft"])
            messages += [{"role": "assistant", "content": first["text"]}, {"role": "user", "content": f"{SHORT} more"}]
            follow.append(stream_chat(client, server.openai_url, messages, key=f"{tag}-{i}")["ttft"])
        for i in range(5):
            run = DirectCli(launcher, Profile(model="sonnet"), prompt=f"{SHORT} cold {i}")
            try:
                cold.append(run.read_turn(run.started)["ttft"])
            finally:
                run.stop()
    finally:
        client.close()
    new_p50, follow_p50, cold_p50 = median(new), median(follow), median(cold)
    return {
        "new_p50_ms": round(new_p50 * 1000, 1),
        "follow_up_p50_ms": round(follow_p50 * 1000, 1),
        "cold_p50_ms": round(cold_p50 * 1000, 1),
        "new_over_follow_up": round(new_p50 / follow_p50, 2),
        "new_over_cold": round(new_p50 / cold_p50, 3),
    }


def bursts(server: BridgeServer, tag: str, rounds: int = 3) -> dict[str, Any]:
    """8 new conversations at once (8 spares ready) against 8 concurrent follow-ups."""

    async def run(batch: list[tuple[list[dict[str, Any]], str]]) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=180) as client:
            return await asyncio.gather(*(astream_chat(client, server.openai_url, m, key=k) for m, k in batch))

    new_ttft, follow_ttft, served_by_spare = [], [], []
    asyncio.run(run([([{"role": "user", "content": f"{SHORT} prime {tag} {i}"}], f"p{tag}{i}") for i in range(8)]))
    for r in range(rounds):
        spares = wait_spares(server, 8)
        served_by_spare.append(spares)
        batch = [([{"role": "user", "content": f"{SHORT} burst {tag} {r} {i}"}], f"b{tag}{r}-{i}") for i in range(8)]
        results = asyncio.run(run(batch))
        new_ttft += [x["ttft"] for x in results if x["ttft"] is not None]
        server.wait_idle(30)
        follow = [
            (
                [*m, {"role": "assistant", "content": x["text"]}, {"role": "user", "content": f"{SHORT} more"}],
                k,
            )
            for (m, k), x in zip(batch, results, strict=True)
        ]
        follow_ttft += [x["ttft"] for x in asyncio.run(run(follow)) if x["ttft"] is not None]
        server.wait_idle(30)
    new_p95, follow_p95 = percentile(new_ttft, 95), percentile(follow_ttft, 95)
    return {
        "spares_ready_before_each_burst": served_by_spare,
        "new_p95_ms": round(new_p95 * 1000, 1),
        "follow_up_p95_ms": round(follow_p95 * 1000, 1),
        "new_over_follow_up": round(new_p95 / follow_p95, 2),
    }


# -- 4. the tap's upstream client: ours against aiohttp's ----------------------------------
N_CLIENT_TTFB = 300
N_CLIENT_RELAY = 20
#: ours; aiohttp with trust_env (proxy and .netrc looked up per request, in a thread); aiohttp
#: with the proxy looked up once (bench/aiohttp_upstream.py)
UPSTREAM_CLIENTS = ("ours", "aiohttp", "aiohttp-once")


def upstream_client(fake_url: str, taps: dict[str, TapProcess]) -> dict[str, Any]:
    """Each round reads the fake directly and through each tap, the order rotated per round;
    also the CPU time each tap process spent per answer."""
    import aiohttp

    nodelay = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]
    bases = {"direct": fake_url, **{name: tap.base_url for name, tap in taps.items()}}
    clients = {name: httpx.Client(timeout=60, transport=httpx.HTTPTransport(socket_options=nodelay)) for name in bases}
    procs = {name: psutil.Process(tap.proc.pid) for name, tap in taps.items()}

    def one(name: str, reply: str) -> list[float]:
        """Seconds from the request to each read of the body (the last: the last byte)."""
        body = {"model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": reply}]}
        started = time.perf_counter()
        reads = []
        with clients[name].stream("POST", bases[name] + "/v1/messages", json=body) as r:
            for _ in r.iter_raw():
                reads.append(time.perf_counter() - started)
        return reads

    names = list(bases)
    cpu: dict[str, dict[str, float]] = {name: {} for name in taps}

    def rounds(n: int, reply: str, label: str = "") -> dict[str, list[list[float]]]:
        before = {name: sum(proc.cpu_times()[:2]) for name, proc in procs.items()}
        out: dict[str, list[list[float]]] = {name: [] for name in names}
        for i in range(n):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                out[name].append(one(name, reply))
        if label:
            for name, proc in procs.items():
                cpu[name][label] = round((sum(proc.cpu_times()[:2]) - before[name]) / n * 1000, 2)
        return out

    rounds(5, SHORT)  # connections and caches warm, on both sides of each tap
    rounds(2, marker(LONG))
    short = rounds(N_CLIENT_TTFB, SHORT, "short")
    long = rounds(N_CLIENT_RELAY, marker(LONG), "long")
    paced = rounds(5, marker(20, 20))  # 20 text chunks, 20 ms apart: relayed as they come?
    fake_port = httpx.URL(fake_url).port
    upstream_connections = {  # kept alive: one each, however many answers
        name: sum(1 for c in proc.net_connections("tcp") if c.raddr and c.raddr.port == fake_port)
        for name, proc in procs.items()
    }
    for client in clients.values():
        client.close()

    ttfb = {name: [reads[0] for reads in short[name]] for name in names}
    last = {name: median(reads[-1] for reads in long[name]) for name in names}
    out: dict[str, Any] = {
        "aiohttp_version": f"{aiohttp.__version__}, parser {aiohttp.http_parser.HttpResponseParser.__module__}",
        "rounds": {"ttfb": N_CLIENT_TTFB, "relay": N_CLIENT_RELAY, "chunks": LONG},
    }
    for name in names:
        entry: dict[str, Any] = {
            "ttfb_p50_ms": round(percentile(ttfb[name], 50) * 1000, 3),
            "ttfb_p95_ms": round(percentile(ttfb[name], 95) * 1000, 3),
            "last_byte_median_ms": round(last[name] * 1000, 1),
            "long_reads_median": median(len(reads) for reads in long[name]),
        }
        if name != "direct":
            entry["ttfb_added_p50_ms"] = round((percentile(ttfb[name], 50) - percentile(ttfb["direct"], 50)) * 1000, 3)
            entry["ttfb_added_p95_ms"] = round((percentile(ttfb[name], 95) - percentile(ttfb["direct"], 95)) * 1000, 3)
            entry["relay_share"] = round(last["direct"] / last[name], 3)  # 1: the tap costs nothing
            entry["tap_cpu_ms_per_answer"] = cpu[name]
            entry["upstream_connections"] = upstream_connections[name]
        gaps = [b - a for reads in paced[name] for a, b in itertools.pairwise(reads)]
        entry["paced_20x20ms"] = {
            "reads": [len(reads) for reads in paced[name]],
            "gap_median_ms": round(median(gaps) * 1000, 1),
            "first_byte_ms": round(median(reads[0] for reads in paced[name]) * 1000, 1),
            "last_byte_ms": round(median(reads[-1] for reads in paced[name]) * 1000, 1),
        }
        out[name] = entry
    for name in taps:
        if name != "ours" and "ours" in taps:
            out[f"{name}_over_ours"] = {
                "last_byte": round(last[name] / last["ours"], 4),
                "ttfb_p50": round(percentile(ttfb[name], 50) / percentile(ttfb["ours"], 50), 4),
                "ttfb_p95": round(percentile(ttfb[name], 95) / percentile(ttfb["ours"], 95), 4),
                "ttfb_added_p50": round(out[name]["ttfb_added_p50_ms"] / out["ours"]["ttfb_added_p50_ms"], 3),
                "cpu_long": round(cpu[name]["long"] / cpu["ours"]["long"], 3),
                "cpu_short": round(cpu[name]["short"] / cpu["ours"]["short"], 3),
            }
    return out


def upstream_client_alone(env: dict[str, str]) -> dict[str, Any]:
    fake = FakeProcess(env)
    taps: dict[str, TapProcess] = {}
    try:
        for client in UPSTREAM_CLIENTS:
            taps[client] = TapProcess(fake.base_url, env, client)
        return {"load_before": os.getloadavg(), **upstream_client(fake.base_url, taps), "load_after": os.getloadavg()}
    finally:
        for tap in taps.values():
            tap.stop()
        fake.stop()


def main() -> int:
    if len(sys.argv) in (3, 4) and sys.argv[1] == "tap":
        _tap_main(*sys.argv[2:])
        return 0
    tag = f"bench-tap-{os.getpid()}"
    env = dict(os.environ, **{TAG_VAR: tag})
    if sys.argv[1:] == ["upstream-client"]:
        log("4. the tap's upstream client, ours against aiohttp's")
        print(json.dumps({"date": time.strftime("%Y-%m-%d"), "upstream_client": upstream_client_alone(env)}, indent=1))
        return 0
    fake = FakeProcess(env)
    tap = TapProcess(fake.base_url, env)
    results: dict[str, Any] = {"cli": find_test_cli(), "date": time.strftime("%Y-%m-%d")}
    servers: list[BridgeServer] = []
    try:

        def server(**settings: str) -> BridgeServer:
            started = BridgeServer(fake.base_url, LOG_LEVEL="warning", **{TAG_VAR: tag}, **settings).start()
            servers.append(started)
            return started

        log("1. relay cost, HTTP level")
        results["http"] = http_level(fake.base_url, tap.base_url)
        log(json.dumps(results["http"]))
        plain = server(UPSTREAM_TAP="off")
        launcher = direct_launcher(find_test_cli(), plain.env, plain.home / "direct")
        log("1. relay cost, the real CLI")
        results["cli"] = cli_level(launcher, tap.base_url, fake.base_url)
        log(json.dumps(results["cli"]))
        plain.wait_idle()
        plain_rss = memory(plain.proc.pid)
        log("2. new conversations vs follow-ups, warm spares (default)")
        warm = server()
        wait_spares(warm, 1)
        time.sleep(5)  # a spare's start-up work ends after its first output: measure it settled
        spare_warmed = [memory(pid) for pid in warm.health()["pool"]["pids"]]  # spares only, yet
        results["ttft_warm"] = server_ttft(warm, launcher, "w")
        log(json.dumps(results["ttft_warm"]))
        results["memory"] = {
            "server_tap_off": plain_rss,
            "server_tap_on": memory(warm.proc.pid),
            "spare_warmed": spare_warmed,
        }
        plain.stop()
        warm.stop()
        log("2. the same with WARM_SPARES=off")
        cold = server(WARM_SPARES="off")
        wait_spares(cold, 1)
        time.sleep(5)
        results["memory"]["spare_unwarmed"] = [memory(pid) for pid in cold.health()["pool"]["pids"]]
        results["ttft_unwarmed"] = server_ttft(cold, launcher, "c")
        log(json.dumps(results["ttft_unwarmed"]))
        cold.stop()
        log("2. 8 new conversations at once vs 8 follow-ups (a spare for each)")
        burst_settings = {"MAX_SPARES_PER_PROFILE": "8", "MAX_PROCESSES": "20", "MAX_CONVERSATIONS": "12"}
        burst = server(**burst_settings)
        results["burst_warm"] = bursts(burst, "w")
        log(json.dumps(results["burst_warm"]))
        burst.stop()
        unwarmed = server(WARM_SPARES="off", **burst_settings)
        results["burst_unwarmed"] = bursts(unwarmed, "c")
        log(json.dumps(results["burst_unwarmed"]))
        unwarmed.stop()
        log("4. the tap's upstream client, ours against aiohttp's")
        results["upstream_client"] = upstream_client_alone(env)
        log(json.dumps(results["upstream_client"]))
    finally:
        for s in servers:
            s.stop()
        tap.stop()
        fake.stop()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
