"""Warm pool benchmark: the server against the Claude CLI used directly, in one run.

    python bench/bench_pool.py            # full run (4-5 minutes on 2 cores; longer on a busy machine)
    python bench/bench_pool.py --quick    # fewer repetitions (2-3 minutes)

Runs the real server (``python -m claude_cli_bridge``, tests/harness.py) and the real CLI
(CLAUDE_CLI_PATH, else .cache/cli/node_modules/.bin/claude, which ``scripts/test`` installs)
against the fake Anthropic API (tests/fake_upstream.py, in a child process, see
bench/common.py). Measures, each as a side-by-side comparison (medians of repeated runs):

1. TTFT (client side, streaming) through the server for a new conversation served by a warm
   spare and for a follow-up on a held conversation, against a cold one-shot
   ``claude -p PROMPT --output-format stream-json --verbose --include-partial-messages`` run with
   the server's own flags and environment (stdin /dev/null, to the first text_delta line).
   Target: <= 0.25x the cold start.
2. 1, 8 and 32 concurrent streaming chats (replies of 20 chunks, 20 ms apart): p50/p95 TTFT and
   total time. Target: 8 concurrent follow-ups with p95 <= 1.5x a single chat, after warm-up.
3. Relay rate of a long fast answer (3000 chunks, no delay): chunks/s through the server
   against a persistent CLI process read directly. Target: >= 95%.
4. Memory: RSS and USS of idle CLI processes (spares, held conversations) and of the server.
5. Spares over time: new conversations one after another on a server with the default pool
   settings, showing which were served by a spare and which started cold.

Sections 1-4 share one server with MAX_PROCESSES=10 and MAX_CONVERSATIONS=8; section 5 starts one with the defaults.
Prints the tables, a summary ready for the README, and writes bench/results/pool.json.
Every process it starts carries BENCH_POOL_TAG in its environment; at the end it checks that
none is left (and kills and reports any that are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx
import psutil
from common import (  # bench/common.py also puts the repo root and tests/ on sys.path
    ROOT,
    TAG_VAR,
    DirectCli,
    FakeProcess,
    astream_chat,
    cpu_delta,
    cpu_seconds,
    expected_text,
    kill_all,
    marker,
    median,
    memory,
    ms,
    percentile,
    ratio,
    stream_chat,
    tagged_processes,
    times,
)
from harness import BridgeServer, find_test_cli

from claude_cli_bridge.cli.locate import cli_version
from claude_cli_bridge.cli.profile import Profile

SYSTEM = "You are the pool benchmark's assistant. Answer briefly."
MODEL = "sonnet"
MAX_PROCESSES = 10
SHORT = marker(5, 0)  # TTFT runs: the fake answers at once, so TTFT is the bridge's and CLI's own cost
CHAT = marker(20, 20)  # concurrency runs: 20 chunks 20 ms apart (about 0.4 s of streaming)
LONG_CHUNKS = 3000
LONG = marker(LONG_CHUNKS, 0)

FULL = {
    "ttft": 7,
    "ttft_fresh": 4,
    "ttft_unseen": 3,
    "single": 7,
    "rounds8": 5,
    "rounds8_new": 2,
    "rounds32": 2,
    "relay": 5,
    "default_pool": 9,
}
QUICK = {
    "ttft": 3,
    "ttft_fresh": 2,
    "ttft_unseen": 2,
    "single": 4,
    "rounds8": 2,
    "rounds8_new": 1,
    "rounds32": 1,
    "relay": 3,
    "default_pool": 8,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Conversation:
    """An OpenAI-style history that grows with each completed turn."""

    def __init__(self, name: str, system: str | None = SYSTEM):
        self.name = name
        self.messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
        self.turns = 0

    def ask(self, reply_marker: str) -> list[dict[str, str]]:
        return [
            *self.messages,
            {"role": "user", "content": f"{reply_marker} {self.name} turn {self.turns + 1}: say something."},
        ]

    def record(self, asked: list[dict[str, str]], result: dict[str, Any]) -> None:
        if result["error"] is None:
            self.messages = [*asked, {"role": "assistant", "content": result["text"]}]
            self.turns += 1


class CpuWatch:
    """CPU seconds used during a ``with`` block by the server's CLI processes (sampled every
    0.1 s, so processes that start and are stopped within the block are counted too), the
    server, the fake upstream and this benchmark."""

    def __init__(self, bench: Bench):
        self.bench = bench
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self.used: dict[str, float] = {}
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample_forever, daemon=True)

    def _sample(self) -> None:
        for pid, cpu in cpu_seconds(self.bench.server.cli_pids()).items():
            self.first.setdefault(pid, 0.0)  # a process started during the block counts whole
            self.last[pid] = cpu

    def _sample_forever(self) -> None:
        while not self._done.wait(0.1):
            self._sample()

    def __enter__(self) -> CpuWatch:
        self.before = self.bench.cpu_snapshot()
        self.first.update(self.before["cli"])
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self._sample()
        rest = self.bench.cpu_since(self.before)
        rest["cli"] = sum(self.last[pid] - self.first[pid] for pid in self.last)
        self.used = rest


class Bench:
    def __init__(self, args: argparse.Namespace, tag: str):
        self.args = args
        self.n = QUICK if args.quick else FULL
        self.tag = tag
        self.cli = find_test_cli()
        self.fake: FakeProcess | None = None
        self.server: BridgeServer | None = None
        self.servers: list[BridgeServer] = []
        self.client: httpx.Client | None = None
        self.direct: list[DirectCli] = []
        self.seen_pids: set[int] = set()
        self.settle_timeouts = 0
        self.results: dict[str, Any] = {}
        self.profile = Profile(model=MODEL, system=SYSTEM)

    # -- plumbing ------------------------------------------------------------------------
    def start(self) -> None:
        env = dict(os.environ, **{TAG_VAR: self.tag})
        self.fake = FakeProcess(env)
        log(f"fake upstream at {self.fake.base_url}")
        # 8 held conversations must fit for the concurrency section, beside 2 spares.
        self.start_server(
            MAX_PROCESSES=str(MAX_PROCESSES), MAX_CONVERSATIONS="8", QUEUE_SIZE="64", QUEUE_TIMEOUT_SECONDS="120"
        )
        self.client = httpx.Client(timeout=180)

    def start_server(self, **settings: str) -> None:
        if self.server is not None:
            self.server.stop()
        self.server = BridgeServer(self.fake.base_url, **{TAG_VAR: self.tag, "LOG_LEVEL": "warning", **settings})
        self.servers.append(self.server)
        self.server.start()
        log(f"server pid {self.server.proc.pid} at {self.server.openai_url} ({settings or 'default settings'})")

    def stop(self) -> None:
        for direct in self.direct:
            direct.stop(self.config_dir)
        if self.client is not None:
            self.client.close()
        for server in self.servers:
            server.stop()
        if self.fake is not None:
            self.fake.stop()

    @property
    def config_dir(self) -> Path | None:
        return Path(self.server.env["CLAUDE_CONFIG_DIR"]) if self.server else None

    def cli_env(self) -> dict[str, str]:
        """Exactly the environment the server gives its CLI processes."""
        return self.profile.env(dict(self.server.env), max_retries=1)

    def workdir(self) -> Path:
        return self.server.home / "bench-work" / uuid.uuid4().hex

    def pool(self) -> dict[str, Any]:
        status = self.server.health()["pool"]
        self.seen_pids.update(status["pids"])
        return status

    def counters(self) -> dict[str, int]:
        return dict(self.pool()["counters"])

    @staticmethod
    def served(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        return {k: after[k] - before[k] for k in ("held", "spare", "cold") if after[k] != before[k]}

    @staticmethod
    def spawned(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
        """Processes started (cold starts and spares) and held conversations evicted."""
        return {k: after[k] - before[k] for k in ("launched", "evictions")}

    def cpu_snapshot(self, direct: DirectCli | None = None) -> dict[str, Any]:
        cli_pids = [direct.pid] if direct else list(self.server.cli_pids())
        return {
            "cli": cpu_seconds(cli_pids),
            "server": sum(cpu_seconds([self.server.proc.pid]).values()),
            "fake": sum(cpu_seconds([self.fake.proc.pid]).values()),
            "client": time.process_time(),
        }

    def cpu_watch(self) -> CpuWatch:
        return CpuWatch(self)

    def cpu_since(self, before: dict[str, Any], direct: DirectCli | None = None) -> dict[str, float]:
        """CPU seconds used since ``before``: CLI processes (those started since count whole),
        the server, the fake upstream, and this benchmark (the client)."""
        now = self.cpu_snapshot(direct)
        return {
            "cli": sum(now["cli"][pid] - before["cli"].get(pid, 0.0) for pid in now["cli"]),
            "server": now["server"] - before["server"],
            "fake": now["fake"] - before["fake"],
            "client": now["client"] - before["client"],
        }

    def settle(self, spares: int | None = None, timeout: float = 12.0, extra_pids: tuple[int, ...] = ()) -> bool:
        """Wait until no turn runs, no process is starting, ``spares`` spares exist, and the
        server and its CLI processes (and ``extra_pids``) are quiet: a fresh CLI keeps using CPU
        for about 3 s after it starts, even idle, so /health's spare count alone is not enough."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.pool()
            if status["busy"] or status["starting"] or (spares is not None and status["spares"] < spares):
                time.sleep(0.05)
                continue
            pids = [*status["pids"], self.server.proc.pid, *extra_pids]
            before = cpu_seconds(pids)
            time.sleep(0.3)
            if cpu_delta(before, cpu_seconds(pids)) <= 0.02:
                return True
        log(f"  (pool did not settle within {timeout:.0f} s: {self.pool()})")
        self.settle_timeouts += 1
        return False

    def wait_spares(self, spares: int, timeout: float = 10.0) -> bool:
        """Only what /health says: the spare count (a spare counts from its exec)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.pool()
            if status["spares"] >= spares and not status["starting"]:
                return True
            time.sleep(0.02)
        return False

    def chat(self, conversation: Conversation, reply_marker: str, key: str | None = None) -> dict[str, Any]:
        asked = conversation.ask(reply_marker)
        before = self.counters()
        cpu = self.cpu_snapshot()
        result = stream_chat(self.client, self.server.openai_url, asked, key)
        result["cpu"] = self.cpu_since(cpu)
        after = self.counters()
        result["served"] = self.served(before, after)
        result["spawned"] = self.spawned(before, after)
        conversation.record(asked, result)
        if result["error"]:
            log(f"  ! {conversation.name}: {result['error']}")
        return result

    def cold_run(self) -> dict[str, Any]:
        """One cold ``claude -p PROMPT`` with the server's flags and environment."""
        prompt = f"{SHORT} cold run {uuid.uuid4().hex[:8]}: say something."
        run = DirectCli(self.profile.argv(self.cli), self.cli_env(), self.workdir(), prompt=prompt)
        try:
            result = run.read_turn(run.started)
            result["exit"] = run.wait_exit()
        finally:
            run.stop(self.config_dir)
        return result

    def spawn_direct(self) -> DirectCli:
        direct = DirectCli(self.profile.argv(self.cli), self.cli_env(), self.workdir())
        self.direct.append(direct)
        return direct

    def end_direct(self, direct: DirectCli) -> None:
        direct.stop(self.config_dir)
        self.direct.remove(direct)

    def held_pid_of(self, before: dict[int, float]) -> int | None:
        """The pool process that did the most work since ``before`` (the one that served)."""
        after = cpu_seconds(self.pool()["pids"])
        grown = {pid: after[pid] - before[pid] for pid in after if pid in before}
        return max(grown, key=grown.get) if grown else None

    # -- 1. time to first token ----------------------------------------------------------
    def bench_ttft(self) -> None:
        log("1. TTFT: cold claude -p vs new conversation (spare) vs follow-up (held)")
        n = self.n["ttft"]
        rows: dict[str, list[dict[str, Any]]] = {
            k: [] for k in ("cold", "spare", "held", "fresh_spare", "unseen", "direct_first", "direct_later")
        }
        memory_rows: dict[str, list[dict[str, float]]] = {"spare": [], "held": []}
        key = "bench-ttft"
        # Warm-up: the first request with this system prompt is cold and makes the pool keep a
        # spare for its profile from then on.
        warm = Conversation("warm-up")
        self.chat(warm, SHORT, key)
        self.chat(warm, SHORT, key)
        for i in range(n):
            self.settle(spares=2)
            rows["cold"].append(self.cold_run())
            self.settle(spares=2)
            conversation = Conversation(f"ttft-{i}")
            rows["spare"].append(self.chat(conversation, SHORT, key))
            # Let the replacement spare (and a directly started CLI, for the floors) settle.
            direct = self.spawn_direct()
            self.settle(spares=2, extra_pids=(direct.pid,))
            before = cpu_seconds(self.pool()["pids"])
            rows["held"].append(self.chat(conversation, SHORT, key))
            held_pid = self.held_pid_of(before)
            rows["direct_first"].append(direct.turn(f"{SHORT} direct {i} turn 1"))
            for turn in (2, 3):
                rows["direct_later"].append(direct.turn(f"{SHORT} direct {i} turn {turn}"))
            self.end_direct(direct)
            self.settle(spares=2)
            for pid in self.pool()["pids"]:
                sample = memory(pid)
                if sample:
                    memory_rows["held" if pid == held_pid else "spare"].append(sample)
            log(
                f"  run {i + 1}/{n}: cold {ms(rows['cold'][-1]['ttft'])} ms, spare {ms(rows['spare'][-1]['ttft'])} ms "
                f"{rows['spare'][-1]['served']}, held {ms(rows['held'][-1]['ttft'])} ms {rows['held'][-1]['served']}, "
                f"direct first/later turn {ms(rows['direct_first'][-1]['ttft'])}/{ms(rows['direct_later'][-1]['ttft'])} ms"
            )
        # A spare taken as soon as /health lists it (it is counted from its exec, still booting).
        for i in range(self.n["ttft_fresh"]):
            self.settle(spares=2)
            self.chat(Conversation(f"fresh-a-{i}"), SHORT, key)  # uses the settled spare
            self.wait_spares(2)
            rows["fresh_spare"].append(self.chat(Conversation(f"fresh-b-{i}"), SHORT, key))
        # A system prompt the pool has not seen: no spare can match, a cold start through the server.
        for i in range(self.n["ttft_unseen"]):
            self.settle()
            conversation = Conversation(f"unseen-{i}", system=f"{SYSTEM} Variant {uuid.uuid4().hex[:8]}.")
            rows["unseen"].append(self.chat(conversation, SHORT, key))
        cold = median(r["ttft"] for r in rows["cold"])
        summary = {}
        for name, results in rows.items():
            values = [r["ttft"] for r in results if r.get("error") is None]
            served: dict[str, int] = {}
            for r in results:
                for k, v in (r.get("served") or {}).items():
                    served[k] = served.get(k, 0) + v
            summary[name] = {
                "started": sum((r.get("spawned") or {}).get("spawned", 0) for r in results),
                "n": len(values),
                "errors": len(results) - len(values),
                "ttft_median": median(values),
                "ttft_min": min(values) if values else None,
                "ttft_max": max(values) if values else None,
                "ratio_to_cold": ratio(median(values), cold),
                "served": served,
                "samples": values,
            }
        summary["cold"]["exit_median"] = median(r.get("exit") for r in rows["cold"])
        self.results["ttft"] = summary
        self.results["memory_phase1"] = memory_rows

    # -- 2. concurrency --------------------------------------------------------------------
    async def _burst(self, conversations: list[Conversation], reply_marker: str) -> tuple[list[dict], float]:
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(timeout=300, limits=limits) as client:
            asked = [c.ask(reply_marker) for c in conversations]
            started = time.perf_counter()
            results = await asyncio.gather(*(astream_chat(client, self.server.openai_url, a) for a in asked))
            wall = time.perf_counter() - started
        for conversation, question, result in zip(conversations, asked, results, strict=False):
            conversation.record(question, result)
        return list(results), wall

    def burst(self, conversations: list[Conversation], reply_marker: str = CHAT) -> dict[str, Any]:
        before = self.counters()
        with self.cpu_watch() as watch:
            results, wall = asyncio.run(self._burst(conversations, reply_marker))
        cpu = watch.used
        errors = [r["error"] for r in results if r["error"]]
        for error in errors[:3]:
            log(f"  ! {error}")
        after = self.counters()
        return {
            "results": results,
            "wall": wall,
            "served": self.served(before, after),
            "spawned": self.spawned(before, after),
            "cpu": cpu,
        }

    def bench_concurrency(self) -> None:
        log("2. concurrency: 1, 8 and 32 chats at once (20 chunks, 20 ms apart)")
        rows: dict[str, dict[str, Any]] = {}

        def add(name: str, label: str, batches: list[dict[str, Any]]) -> None:
            results = [r for b in batches for r in b["results"]]
            ok = [r for r in results if r["error"] is None]
            served: dict[str, int] = {}
            for b in batches:
                for k, v in b["served"].items():
                    served[k] = served.get(k, 0) + v
            rows[name] = {
                "label": label,
                "requests": len(results),
                "errors": len(results) - len(ok),
                "ttft_p50": percentile([r["ttft"] for r in ok], 50),
                "ttft_p95": percentile([r["ttft"] for r in ok], 95),
                "total_p50": percentile([r["total"] for r in ok], 50),
                "total_p95": percentile([r["total"] for r in ok], 95),
                "wall_median": median(b["wall"] for b in batches),
                "served": served,
                "complete": all(r["text"] == expected_text(20) for r in ok),
                # CPU seconds per request, by process group: a batch cannot finish faster than
                # its total CPU divided by the cores.
                "cpu_per_request": {
                    part: sum(b["cpu"][part] for b in batches) / max(1, len(results))
                    for part in ("cli", "server", "fake", "client")
                },
            }
            row = rows[name]
            log(
                f"  {label}: TTFT p50/p95 {ms(row['ttft_p50'])}/{ms(row['ttft_p95'])} ms, total p50/p95 "
                f"{ms(row['total_p50'])}/{ms(row['total_p95'])} ms, errors {row['errors']}, served {served}"
            )

        def single(conversation_for, count: int, spares: int | None, key: str | None = None) -> list[dict]:
            batches = []
            for i in range(count):
                self.settle(spares=spares)
                conversation = conversation_for(i)
                before = self.counters()
                started = time.perf_counter()
                result = self.chat(conversation, CHAT, key)
                batches.append(
                    {
                        "results": [result],
                        "wall": time.perf_counter() - started,
                        "served": self.served(before, self.counters()),
                        "cpu": result["cpu"],
                    }
                )
            return batches

        # A single new conversation (served by the settled spare); one key, so each retires the last.
        add(
            "single_new",
            "1 new conversation (spare)",
            single(lambda i: Conversation(f"single-new-{i}"), self.n["single"], spares=2, key="bench-single"),
        )
        # Warm-up: 8 conversations at once (1 spare, 7 cold starts); they stay held.
        self.settle()
        held = [Conversation(f"c8-{i}") for i in range(8)]
        self.burst(held)
        self.settle()
        # Single follow-ups and rounds of 8 concurrent follow-ups alternate, so both see the
        # same background load on a shared machine.
        singles, batches = [], []
        for i in range(max(self.n["single"], self.n["rounds8"])):
            if i < self.n["single"]:
                singles += single(lambda _: held[0], 1, spares=None)
            if i < self.n["rounds8"]:
                self.settle()
                batches.append(self.burst(held))
        add("single_held", "1 follow-up (held)", singles)
        add("c8_held", "8 concurrent follow-ups (held)", batches)
        batches = []
        for r in range(self.n["rounds8_new"]):
            self.settle(timeout=20)
            batches.append(self.burst([Conversation(f"n8-{r}-{i}") for i in range(8)]))
        add("c8_new", "8 concurrent new conversations", batches)
        batches = []
        for r in range(self.n["rounds32"]):
            self.settle(timeout=20)
            batches.append(self.burst([Conversation(f"n32-{r}-{i}") for i in range(32)]))
        add("c32_new", f"32 concurrent new conversations (queue over {MAX_PROCESSES} processes)", batches)
        for name, row in rows.items():
            base = rows["single_new" if name.endswith("new") else "single_held"]
            row["ttft_p95_x_single"] = ratio(row["ttft_p95"], base["ttft_p95"])
            row["total_p95_x_single"] = ratio(row["total_p95"], base["total_p95"])
            row["baseline"] = base["label"]
        self.results["concurrency"] = rows

    # -- 3. relay rate ---------------------------------------------------------------------
    def bench_relay(self) -> None:
        log(f"3. relay rate: {LONG_CHUNKS} chunks, no delay; server (held conversation) vs the CLI read directly")
        server_runs, direct_runs = [], []
        conversation = Conversation("relay")
        key = "bench-relay"
        self.settle(timeout=20)
        self.chat(conversation, LONG, key)  # warm-up (and the conversation is now held)
        direct = self.spawn_direct()
        direct.turn(f"{LONG} direct warm-up")
        relay_pid = None
        for i in range(self.n["relay"]):
            self.settle(extra_pids=(direct.pid,))
            before = cpu_seconds(self.pool()["pids"])
            result = self.chat(conversation, LONG, key)
            relay_pid = self.held_pid_of(before)
            result["complete"] = result["text"] == expected_text(LONG_CHUNKS)
            server_runs.append(result)
            self.settle(extra_pids=(direct.pid,))
            cpu = self.cpu_snapshot(direct)
            run = direct.turn(f"{LONG} direct turn {i}")
            run["cpu"] = self.cpu_since(cpu, direct)
            run["complete"] = run["text"] == expected_text(LONG_CHUNKS)
            direct_runs.append(run)
            log(f"  run {i + 1}: server {self._rate(result):,.0f} chunks/s, direct {self._rate(run):,.0f} chunks/s")
        self.end_direct(direct)

        def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
            rates = [self._rate(r) for r in runs if r.get("error") is None]
            return {
                "rate_median": median(rates),
                "rates": rates,
                "first_to_last_median": median(r["first_to_last"] for r in runs),
                "ttft_median": median(r["ttft"] for r in runs),
                "total_median": median(r["total"] for r in runs),
                "chunks": [r["chunks"] for r in runs],
                "complete": all(r.get("complete") for r in runs),
                "cpu_median": {
                    part: median(r["cpu"][part] for r in runs) for part in ("cli", "server", "fake", "client")
                },
            }

        out = {"server": summary(server_runs), "direct": summary(direct_runs)}
        out["ratio"] = ratio(out["server"]["rate_median"], out["direct"]["rate_median"])
        if relay_pid is not None:
            out["held_pid_memory"] = memory(relay_pid)
        self.results["relay"] = out

    @staticmethod
    def _rate(run: dict[str, Any]) -> float:
        if not run.get("first_to_last"):
            return 0.0
        return (LONG_CHUNKS - 1) / run["first_to_last"]

    # -- 4. memory ---------------------------------------------------------------------------
    def server_memory(self) -> dict[str, float] | None:
        return memory(self.server.proc.pid)

    def bench_memory_end(self) -> None:
        self.settle(timeout=20)
        status = self.pool()
        samples = [s for s in (memory(pid) for pid in status["pids"]) if s]
        self.results["memory_end"] = {
            "server": self.server_memory(),
            "cli_count": len(samples),
            "held": status["held"],
            "spares": status["spares"],
            "cli_rss_median": median(s["rss_mb"] for s in samples),
            "cli_uss_median": median(s["uss_mb"] for s in samples),
            "cli_rss_total": sum(s["rss_mb"] for s in samples),
            "cli_uss_total": sum(s["uss_mb"] for s in samples),
        }

    # -- 5. spares over time, default settings ----------------------------------------------
    def bench_default_pool(self) -> None:
        """New conversations one after another (each stays held) on a server with the default
        MAX_PROCESSES and MAX_CONVERSATIONS, and the default profile (the start-up spare's)."""
        log("5. new conversations one after another with the default pool settings")
        self.start_server()
        self.settle(spares=1, timeout=20)
        runs = []
        for i in range(self.n["default_pool"]):
            self.settle(timeout=8)
            result = self.chat(Conversation(f"default-{i}", system=None), SHORT)
            self.settle(timeout=8)
            status = self.pool()
            runs.append(
                {
                    "ttft": result["ttft"],
                    "served": result["served"],
                    "spawned": result["spawned"],
                    "error": result["error"],
                    "after": {k: status[k] for k in ("processes", "held", "spares")},
                }
            )
            log(
                f"  conversation {i + 1}: TTFT {ms(result['ttft'])} ms, served {result['served']}, "
                f"{result['spawned']}, then {runs[-1]['after']}"
            )
        self.results["default_pool"] = {
            "runs": runs,
            "settings": "defaults (MAX_PROCESSES=8, MAX_CONVERSATIONS=6, SPARE_PROFILES=2)",
        }

    # -- run -----------------------------------------------------------------------------------
    def run(self) -> None:
        self.start()
        self.settle(spares=1, timeout=20)
        start_pids = self.pool()["pids"]
        self.results["memory_start"] = {
            "server": self.server_memory(),
            "spares": [memory(pid) for pid in start_pids],
        }
        self.bench_ttft()
        self.bench_concurrency()
        self.bench_relay()
        self.bench_memory_end()
        self.bench_default_pool()


# -- reporting ------------------------------------------------------------------------------
def mb(sample: dict[str, float] | None, key: str) -> str:
    return "n/a" if not sample or sample.get(key) is None else f"{sample[key]:.0f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def report(results: dict[str, Any]) -> str:
    out: list[str] = []
    meta = results["meta"]
    out.append(
        f"Pool benchmark: CLI {meta['cli_version']}, {meta['cpus']} CPUs, Python {meta['python']}, "
        f"{'quick' if meta['quick'] else 'full'} run, {meta['duration_s']:.0f} s, "
        f"load average {meta['load_start']} at start, {meta['load_end']} at the end; "
        f"{meta['settle_timeouts']} waits for a quiet pool timed out. MAX_PROCESSES={MAX_PROCESSES} "
        "(sections 1-4)."
    )
    out.append("")
    t = results.get("ttft")
    if t:
        out.append("### 1. Time to first token (client side, streaming; fake answers at once; median of runs)")
        out.append("")
        out.append(
            "| Path | Runs | TTFT median (ms) | min–max (ms) | × cold `claude -p` | Served by | CLI processes started |"
        )
        out.append("|---|---|---|---|---|---|---|")
        labels = [
            ("cold", "cold `claude -p` (direct, server's flags and env)"),
            ("spare", "**server, new conversation (warm spare, settled)**"),
            ("held", "**server, follow-up (held conversation)**"),
            ("fresh_spare", "server, new conversation, spare taken as soon as /health lists it"),
            ("unseen", "server, new conversation, unseen system prompt (cold through the server)"),
            ("direct_first", "floor: persistent CLI read directly, first turn (what a spare can do)"),
            ("direct_later", "floor: persistent CLI read directly, later turn (what a follow-up can do)"),
        ]
        for name, label in labels:
            row = t[name]
            served = ", ".join(f"{k} {v}" for k, v in row["served"].items()) or "–"
            out.append(
                f"| {label} | {row['n']} | {ms(row['ttft_median'])} | {ms(row['ttft_min'])}–{ms(row['ttft_max'])} "
                f"| {times(row['ratio_to_cold'])} | {served} | {row['started'] if row['served'] else '–'} |"
            )
        out.append("")
        out.append(
            f"Target ≤ 0.25× cold: new conversation {times(t['spare']['ratio_to_cold'])} "
            f"{verdict(_le(t['spare']['ratio_to_cold'], 0.25))}; follow-up {times(t['held']['ratio_to_cold'])} "
            f"{verdict(_le(t['held']['ratio_to_cold'], 0.25))}."
        )
        out.append("")
    c = results.get("concurrency")
    if c:
        out.append(
            "### 2. Concurrent streaming chats (20 chunks, 20 ms apart; p95 ratios against the single chat of the same kind)"
        )
        out.append("")
        out.append(
            "| Workload | Requests | TTFT p50 / p95 (ms) | Total p50 / p95 (ms) | Batch wall (ms) | p95 TTFT × single "
            "| p95 total × single | Errors | Served by | CPU ms per chat: CLI / server / fake / client |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|")
        for row in c.values():
            served = ", ".join(f"{k} {v}" for k, v in row["served"].items()) or "–"
            out.append(
                f"| {row['label']} | {row['requests']} | {ms(row['ttft_p50'])} / {ms(row['ttft_p95'])} "
                f"| {ms(row['total_p50'])} / {ms(row['total_p95'])} | {ms(row['wall_median'])} "
                f"| {times(row['ttft_p95_x_single'])} | {times(row['total_p95_x_single'])} | {row['errors']} | {served} "
                f"| {_cpu(row['cpu_per_request'])} |"
            )
        out.append("")
        held8 = c["c8_held"]
        new8 = c["c8_new"]
        cpu8 = sum(v for v in held8["cpu_per_request"].values() if v) * 8
        out.append(
            f"CPU for one batch of 8 follow-ups: {cpu8 * 1000:.0f} ms (CLI "
            f"{held8['cpu_per_request']['cli'] * 8 * 1000:.0f} ms), so on {meta['cpus']} cores a batch takes at "
            f"least {cpu8 / meta['cpus'] * 1000:.0f} ms of CPU time, against a single follow-up's TTFT p95 of "
            f"{ms(c['single_held']['ttft_p95'])} ms."
        )
        out.append("")
        out.append(
            f"Target 8 concurrent p95 ≤ 1.5× single (after warm-up, held conversations): TTFT "
            f"{times(held8['ttft_p95_x_single'])}, total {times(held8['total_p95_x_single'])} "
            f"{verdict(_le(held8['ttft_p95_x_single'], 1.5) and _le(held8['total_p95_x_single'], 1.5))}. "
            f"8 new conversations at once: TTFT {times(new8['ttft_p95_x_single'])}, total "
            f"{times(new8['total_p95_x_single'])} "
            f"{verdict(_le(new8['ttft_p95_x_single'], 1.5) and _le(new8['total_p95_x_single'], 1.5))}."
        )
        out.append("")
    r = results.get("relay")
    if r:
        out.append(f"### 3. Relay rate ({LONG_CHUNKS} chunks, no delay; first to last chunk; median of runs)")
        out.append("")
        out.append(
            "| Path | Chunks/s | First→last (ms) | TTFT (ms) | Complete | CPU ms per answer: CLI / server / fake / client |"
        )
        out.append("|---|---|---|---|---|---|")
        for name, label in (
            ("direct", "persistent CLI read directly"),
            ("server", "server, streaming (held conversation)"),
        ):
            row = r[name]
            out.append(
                f"| {label} | {row['rate_median']:,.0f} | {ms(row['first_to_last_median'])} | {ms(row['ttft_median'])} "
                f"| {'yes' if row['complete'] else 'NO'} | {_cpu(row['cpu_median'])} |"
            )
        out.append("")
        out.append(f"Target ≥ 95%: server/direct = {_pct(r['ratio'])} {verdict(_ge(r['ratio'], 0.95))}.")
        out.append("")
    ms_ = results.get("memory_start")
    m1 = results.get("memory_phase1")
    me = results.get("memory_end")
    if ms_ and me:
        out.append("### 4. Memory (idle, MB; psutil memory_full_info)")
        out.append("")
        out.append("| Process | Count | RSS (median) | USS (median) |")
        out.append("|---|---|---|---|")
        out.append(f"| server, at start | 1 | {mb(ms_['server'], 'rss_mb')} | {mb(ms_['server'], 'uss_mb')} |")
        out.append(f"| server, after all runs | 1 | {mb(me['server'], 'rss_mb')} | {mb(me['server'], 'uss_mb')} |")
        spares = [s for s in ms_["spares"] if s] + (m1["spare"] if m1 else [])
        helds = m1["held"] if m1 else []
        out.append(
            f"| CLI, idle spare (no turn yet) | {len(spares)} samples | {_med(spares, 'rss_mb')} | {_med(spares, 'uss_mb')} |"
        )
        out.append(
            f"| CLI, held conversation (2 short turns) | {len(helds)} samples | {_med(helds, 'rss_mb')} | {_med(helds, 'uss_mb')} |"
        )
        if r and r.get("held_pid_memory"):
            hp = r["held_pid_memory"]
            out.append(
                f"| CLI, held conversation after {1 + len(r['server']['rates'])} answers of {LONG_CHUNKS} chunks | 1 "
                f"| {mb(hp, 'rss_mb')} | {mb(hp, 'uss_mb')} |"
            )
        out.append(
            f"| all idle CLI processes at the end ({me['held']} held, {me['spares']} spares) | {me['cli_count']} "
            f"| {_fmt(me['cli_rss_median'])} (total {_fmt(me['cli_rss_total'])}) "
            f"| {_fmt(me['cli_uss_median'])} (total {_fmt(me['cli_uss_total'])}) |"
        )
        out.append("")
    d = results.get("default_pool")
    if d:
        out.append(f"### 5. New conversations one after another, default pool settings ({d['settings']})")
        out.append("")
        out.append("| # | TTFT (ms) | Served by | Started / evicted | Then: processes, held, spares |")
        out.append("|---|---|---|---|---|")
        for i, run in enumerate(d["runs"], 1):
            served = ", ".join(f"{k} {v}" for k, v in run["served"].items()) or "–"
            after = run["after"]
            out.append(
                f"| {i} | {ms(run['ttft'])} | {served} | {run['spawned']['spawned']} / {run['spawned']['evictions']} "
                f"| {after['processes']}, {after['held']}, {after['spares']} |"
            )
        out.append("")
    return "\n".join(out)


def readme_table(results: dict[str, Any]) -> str:
    t, c, r = results.get("ttft"), results.get("concurrency"), results.get("relay")
    ms_, m1, me = results.get("memory_start"), results.get("memory_phase1"), results.get("memory_end")
    meta = results["meta"]
    lines = [
        (
            f"Measured with `python bench/bench_pool.py` (CLI {meta['cli_version']}, {meta['cpus']} cores, load average "
            f"{meta['load_start'].split()[0]} at the start, fake upstream on loopback, MAX_PROCESSES={MAX_PROCESSES}; "
            "medians):"
        ),
        "",
        "| Benchmark | Result | Target | |",
        "|---|---|---|---|",
    ]
    if t:
        cold = t["cold"]["ttft_median"]
        lines.append(
            f"| TTFT, new conversation (warm spare) | {ms(t['spare']['ttft_median'])} ms vs {ms(cold)} ms cold "
            f"`claude -p` = {times(t['spare']['ratio_to_cold'])} | ≤ 0.25× | {_mark(_le(t['spare']['ratio_to_cold'], 0.25))} |"
        )
        lines.append(
            f"| TTFT, follow-up (held conversation) | {ms(t['held']['ttft_median'])} ms vs {ms(cold)} ms = "
            f"{times(t['held']['ratio_to_cold'])} | ≤ 0.25× | {_mark(_le(t['held']['ratio_to_cold'], 0.25))} |"
        )
    if c:
        s, h8, n8, n32 = c["single_held"], c["c8_held"], c["c8_new"], c["c32_new"]
        lines.append(
            f"| 8 concurrent follow-ups, p95 TTFT / total | {ms(h8['ttft_p95'])} / {ms(h8['total_p95'])} ms vs single "
            f"{ms(s['ttft_p95'])} / {ms(s['total_p95'])} ms = {times(h8['ttft_p95_x_single'])} / "
            f"{times(h8['total_p95_x_single'])} | ≤ 1.5× | "
            f"{_mark(_le(h8['ttft_p95_x_single'], 1.5) and _le(h8['total_p95_x_single'], 1.5))} |"
        )
        lines.append(
            f"| 8 concurrent new conversations, p95 TTFT / total | {ms(n8['ttft_p95'])} / {ms(n8['total_p95'])} ms = "
            f"{times(n8['ttft_p95_x_single'])} / {times(n8['total_p95_x_single'])} a single new one | – | |"
        )
        lines.append(
            f"| 32 concurrent new conversations, p50 / p95 TTFT (queued over {MAX_PROCESSES} processes) | "
            f"{ms(n32['ttft_p50'])} / {ms(n32['ttft_p95'])} ms; total p95 {ms(n32['total_p95'])} ms; "
            f"{n32['errors']} errors | – | |"
        )
    if r:
        lines.append(
            f"| Relay rate, {LONG_CHUNKS} fast chunks | {r['server']['rate_median']:,.0f} vs "
            f"{r['direct']['rate_median']:,.0f} chunks/s direct = {_pct(r['ratio'])} | ≥ 95% | "
            f"{_mark(_ge(r['ratio'], 0.95))} |"
        )
    d = results.get("default_pool")
    if d:
        spare_runs = [x["ttft"] for x in d["runs"] if x["served"].get("spare")]
        cold_runs = [x["ttft"] for x in d["runs"] if x["served"].get("cold")]
        lines.append(
            f"| {len(d['runs'])} new conversations in a row, default settings | {len(spare_runs)} served by a spare "
            f"(median {ms(median(spare_runs))} ms), {len(cold_runs)} cold (median {ms(median(cold_runs))} ms) | – | |"
        )
    if ms_ and me:
        spares = [s for s in ms_["spares"] if s] + (m1["spare"] if m1 else [])
        helds = m1["held"] if m1 else []
        lines.append(
            f"| Memory per idle CLI process, RSS / USS | spare {_med(spares, 'rss_mb')} / {_med(spares, 'uss_mb')} MB, "
            f"held {_med(helds, 'rss_mb')} / {_med(helds, 'uss_mb')} MB | – | |"
        )
        lines.append(
            f"| Memory of the server, RSS / USS | {mb(ms_['server'], 'rss_mb')} / {mb(ms_['server'], 'uss_mb')} MB "
            f"at start, {mb(me['server'], 'rss_mb')} / {mb(me['server'], 'uss_mb')} MB after the runs | – | |"
        )
    return "\n".join(lines)


def _le(value: float | None, bound: float) -> bool | None:
    return None if value is None else value <= bound


def _ge(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def _cpu(parts: dict[str, float | None]) -> str:
    return " / ".join(ms(parts.get(k)) for k in ("cli", "server", "fake", "client"))


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f}%"


def _mark(ok: bool | None) -> str:
    return "–" if ok is None else ("met" if ok else "**missed**")


def _med(samples: list[dict[str, float]], key: str) -> str:
    return _fmt(median(s[key] for s in samples))


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (about half the time)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "pool.json"), help="where to write the JSON")
    args = parser.parse_args()
    tag = uuid.uuid4().hex
    bench = Bench(args, tag)
    started = time.monotonic()
    results = bench.results
    results["meta"] = {
        "cli": bench.cli,
        "cli_version": cli_version(bench.cli),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "quick": args.quick,
        "load_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "max_processes": MAX_PROCESSES,
    }
    failure = None
    try:
        bench.run()
    except KeyboardInterrupt:
        failure = "interrupted"
        log("interrupted; cleaning up")
    except Exception as exc:
        failure = f"{type(exc).__name__}: {exc}"
        log(f"FAILED: {failure}")
        if bench.server is not None:
            log("server log tail:\n" + bench.server.log()[-3000:])
    finally:
        bench.stop()
        leftovers = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            leftovers = tagged_processes(tag)
            if not leftovers:
                break
            time.sleep(0.2)
        results["leftover_processes"] = [{"pid": p.pid, "cmdline": " ".join(_safe_cmdline(p))[:200]} for p in leftovers]
        if leftovers:
            log(f"WARNING: {len(leftovers)} process(es) left behind; killing them: {results['leftover_processes']}")
            kill_all(leftovers)
        for server in bench.servers:
            shutil.rmtree(server.home, ignore_errors=True)
    results["meta"]["duration_s"] = time.monotonic() - started
    results["meta"]["load_end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results["meta"]["failure"] = failure
    results["meta"]["pool_pids_seen"] = len(bench.seen_pids)
    results["meta"]["settle_timeouts"] = bench.settle_timeouts
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print()
    print(report(results))
    print("#### README table")
    print()
    print(readme_table(results))
    print()
    print(
        f"Processes left behind: {len(results['leftover_processes'])} "
        f"(checked every process carrying {TAG_VAR}={tag}; {len(bench.seen_pids)} pool pids seen)."
    )
    print(f"JSON: {out}")
    return 1 if failure or results["leftover_processes"] else 0


def _safe_cmdline(proc) -> list[str]:
    try:
        return proc.cmdline()
    except psutil.Error:
        return []


if __name__ == "__main__":
    sys.exit(main())
