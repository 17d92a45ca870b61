"""Warm pool benchmark: the server against the Claude CLI used directly, in one run.

    python bench/bench_pool.py            # full run (10-15 minutes on 2 busy cores)
    python bench/bench_pool.py --quick    # fewer repetitions (6-8 minutes)

Runs the real server (``python -m claude_cli_bridge``, tests/harness.py) and the real CLI
(CLAUDE_CLI_PATH, else .cache/cli/node_modules/.bin/claude, which ``scripts/test`` installs)
against the fake Anthropic API (tests/fake_upstream.py, in a child process, see
bench/common.py). A CLI "read directly" is launched exactly as the pool launches it: argv,
environment and files from ``cli.launch.Launcher``, turns written with ``cli.wire.user_line``.
Measures, each as a comparison within the run (medians of repeated runs):

1. TTFT (client side, streaming) through the server for a new conversation served by a warm
   spare and for a follow-up on a held conversation, against a cold one-shot
   ``claude -p PROMPT`` run with the server's own flags and environment (stdin /dev/null, to
   the first text_delta line), and the floors: a persistent CLI read directly, first turn
   (with and without the ``initialize`` handshake the pool sends at launch) and later turns.
   Target: new conversation <= 0.25x the cold start.
2. Concurrent streaming chats: 8 concurrent follow-ups (short answers, and 20 chunks 20 ms
   apart) against the CPU bound of the batch (CLI and server CPU seconds / cores), with the CPU
   that other processes of the machine used meanwhile; 32 new conversations at once (queue).
   Target: 8 concurrent follow-ups, p95 <= 1.2x the CPU bound.
3. Relay: request to the last text byte of a long fast answer (3000 chunks, no delay) through
   the server (held conversation), against writing the turn to a CLI read directly to its last
   text delta. Target: direct time / server time >= 0.95.
4. Memory: RSS and USS of idle CLI processes (spares, held conversations) and of the server.
5. Bursts of 8 new conversations at once, on a server with room for the spares demand asks
   for: the first burst (cold, it teaches the demand), then settled bursts; p95 TTFT against a
   single new conversation, the batch's CPU bound, and the memory of the spares. For the pool
   as it is (MAX_SPARES_PER_PROFILE=4, replacements deferred while turns run) and with
   MAX_SPARES_PER_PROFILE=8.
   Target: p95 TTFT <= 2x a single new conversation.
6. Open WebUI task bursts: after each answer of a chat, its three background tasks (title with
   num_predict 1000, tags, follow-ups) at once, non-streaming, on the task model, with the
   default settings: which were served by spares. For the pool as it is and, through
   bench/bridge_with_limits.py, with spares allowed to retire the oldest idle conversation.
   Target: all, from the second answer on.
7. New conversations one after another with the default settings: spare or cold.

Sections 1-4 share one server (MAX_PROCESSES=10, MAX_CONVERSATIONS=8); 5, 6 and 7 start their
own. Every figure is printed with the load average, and the concurrent sections with the CPU
other processes used, since the machine is shared. Prints the tables, a summary ready for the
README, and writes bench/results/pool.json. Every process it starts carries BENCH_POOL_TAG in
its environment; at the end it checks that none is left (and kills and reports any that are).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
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
    aollama_chat,
    astream_chat,
    cpu_delta,
    cpu_seconds,
    direct_launcher,
    expected_text,
    kill_all,
    machine_busy_seconds,
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

from claude_cli_bridge.cli.launch import Launcher
from claude_cli_bridge.cli.locate import cli_version
from claude_cli_bridge.cli.profile import Profile

BENCH = Path(__file__).resolve().parent
SYSTEM = "You are the pool benchmark's assistant. Answer briefly."
MODEL = "sonnet"
MAX_PROCESSES = 10
SHORT = marker(5, 0)  # the fake answers at once: TTFT is the bridge's and the CLI's own cost
CHAT = marker(20, 20)  # 20 chunks 20 ms apart (about 0.4 s of streaming)
LONG_CHUNKS = 3000
LONG = marker(LONG_CHUNKS, 0)
BURST = 8
BURST_MAX_PROCESSES = 20  # a burst of 8, its replacements and every spare the demand asks for
# Pool variations measured beside the pool as it is (bench/bridge_with_limits.py).
BURST_VARIANTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("cap4", "the pool as it is (MAX_SPARES_PER_PROFILE=4; replacements deferred while turns run)", {}),
    ("cap8", "MAX_SPARES_PER_PROFILE=8", {"MAX_SPARES_PER_PROFILE": "8"}),
)
WEBUI_VARIANTS: tuple[tuple[str, str, dict[str, str]], ...] = (
    ("pool", "the pool as it is", {}),
    ("evict", "a spare short of its target may retire the oldest idle conversation", {"BENCH_SPARES_EVICT": "1"}),
)

# Open WebUI's task requests after an answer (backend/open_webui/routers/tasks.py): the title
# task carries max_tokens 1000 (num_predict for an Ollama model), tags and follow-ups nothing.
TASKS = {
    "title": ('Generate a concise, 3-5 word title with an emoji summarizing the chat history.', '{ "title": "..." }', 1000),
    "tags": ("Generate 1-3 broad tags categorizing the main themes of the chat history.", '{ "tags": ["..."] }', None),
    "follow_ups": ("Suggest 3-5 relevant follow-up questions the user might ask next.", '{ "follow_ups": ["..."] }', None),
}  # fmt: skip

FULL = {
    "ttft": 7,
    "ttft_fresh": 4,
    "ttft_unseen": 3,
    "single": 7,
    "rounds8": 5,
    "rounds32": 2,
    "relay": 5,
    "burst_single": 5,
    "bursts": 4,
    "webui_rounds": 5,
    "default_pool": 9,
}
QUICK = {
    "ttft": 3,
    "ttft_fresh": 2,
    "ttft_unseen": 2,
    "single": 4,
    "rounds8": 3,
    "rounds32": 1,
    "relay": 3,
    "burst_single": 3,
    "bursts": 2,
    "webui_rounds": 4,
    "default_pool": 6,
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def load() -> float:
    return round(os.getloadavg()[0], 2)


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
    server, the fake upstream and this benchmark, and by the whole machine (/proc/stat):
    ``others`` is what the machine's other processes (other engineers' runs) used."""

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
        self.machine = machine_busy_seconds()
        self.started = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self._sample()
        rest = self.bench.cpu_since(self.before)
        rest["cli"] = sum(self.last[pid] - self.first[pid] for pid in self.last)
        rest["wall"] = time.perf_counter() - self.started
        rest["machine"] = machine_busy_seconds() - self.machine
        rest["others"] = max(0.0, rest["machine"] - sum(rest[k] for k in ("cli", "server", "fake", "client")))
        self.used = rest


class LimitsServer(BridgeServer):
    """The server run by bench/bridge_with_limits.py (a pool variation without a setting)."""

    def start(self, wait: bool = True) -> LimitsServer:
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "bridge_with_limits.py")],
            cwd=str(ROOT),
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            self.wait_ready()
        return self


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
        self.launcher: Launcher | None = None
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
        # CLIs read directly: the server's environment, working directory and launch files.
        self.launcher = direct_launcher(self.cli, self.server.env, self.server.home / "direct-state")
        self.client = httpx.Client(timeout=180)

    def start_server(self, variation: dict[str, str] | None = None, **settings: str) -> None:
        """A new server with ``settings``; ``variation``: bench/bridge_with_limits.py's variables."""
        if self.server is not None:
            self.server.stop()
        env = {TAG_VAR: self.tag, "LOG_LEVEL": "warning", **settings}
        if variation:
            self.server = LimitsServer(self.fake.base_url, **variation, **env)
        else:
            self.server = BridgeServer(self.fake.base_url, **env)
        self.servers.append(self.server)
        self.server.start()
        log(
            f"server pid {self.server.proc.pid} at {self.server.openai_url} ({settings or 'default settings'}"
            f"{', pool variation ' + str(variation) if variation else ''})"
        )

    def stop(self) -> None:
        for direct in list(self.direct):
            direct.stop()
        if self.client is not None:
            self.client.close()
        for server in self.servers:
            server.stop()
        if self.fake is not None:
            self.fake.stop()

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
        log(f"  (pool did not settle within {timeout:.0f} s: {_brief(self.pool())})")
        self.settle_timeouts += 1
        return False

    def settle_targets(self, timeout: float = 30.0) -> bool:
        """Wait until every profile has the spares its demand asks for (/health's
        spare_targets), nothing is starting or stopping, then until the pool is quiet."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.pool()
            wanted = sum(status["spare_targets"].values())
            if status["spares"] >= wanted and not status["starting"] and not status["stopping"]:
                return self.settle(timeout=max(1.0, deadline - time.monotonic()))
            time.sleep(0.05)
        log(f"  (spares did not reach their targets within {timeout:.0f} s: {_brief(self.pool())})")
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
        result["load"] = load()
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
        run = DirectCli(self.launcher, self.profile, prompt=prompt)
        try:
            result = run.read_turn(run.started)
            result["exit"] = run.wait_exit()
        finally:
            run.stop()
        result["load"] = load()
        return result

    def spawn_direct(self, initialize: bool = True) -> DirectCli:
        direct = DirectCli(self.launcher, self.profile, initialize=initialize)
        self.direct.append(direct)
        return direct

    def end_direct(self, direct: DirectCli) -> None:
        direct.stop()
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
            k: []
            for k in (
                "cold",
                "spare",
                "held",
                "fresh_spare",
                "unseen",
                "direct_first",
                "direct_first_plain",
                "direct_later",
            )
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
            # Let the replacement spare (and CLIs started directly, for the floors) settle.
            direct = self.spawn_direct()
            plain = self.spawn_direct(initialize=False)
            self.settle(spares=2, extra_pids=(direct.pid, plain.pid))
            before = cpu_seconds(self.pool()["pids"])
            rows["held"].append(self.chat(conversation, SHORT, key))
            held_pid = self.held_pid_of(before)
            # The floors, first turns in alternating order (the machine's load drifts).
            pair = [(direct, "direct_first"), (plain, "direct_first_plain")]
            for proc, name in pair if i % 2 == 0 else reversed(pair):
                rows[name].append(proc.turn(f"{SHORT} {name} {i} turn 1"))
                rows[name][-1]["load"] = load()
                self.settle(extra_pids=(direct.pid, plain.pid), timeout=8)
            for turn in (2, 3):
                rows["direct_later"].append(direct.turn(f"{SHORT} direct {i} turn {turn}"))
            self.end_direct(direct)
            self.end_direct(plain)
            self.settle(spares=2)
            for pid in self.pool()["pids"]:
                sample = memory(pid)
                if sample:
                    memory_rows["held" if pid == held_pid else "spare"].append(sample)
            log(
                f"  run {i + 1}/{n} (load {load()}): cold {ms(rows['cold'][-1]['ttft'])} ms, spare "
                f"{ms(rows['spare'][-1]['ttft'])} ms {rows['spare'][-1]['served']}, held "
                f"{ms(rows['held'][-1]['ttft'])} ms {rows['held'][-1]['served']}, direct first turn "
                f"{ms(rows['direct_first'][-1]['ttft'])} ms (without initialize "
                f"{ms(rows['direct_first_plain'][-1]['ttft'])} ms), later {ms(rows['direct_later'][-1]['ttft'])} ms"
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
                "started": sum((r.get("spawned") or {}).get("launched", 0) for r in results),
                "n": len(values),
                "errors": len(results) - len(values),
                "ttft_median": median(values),
                "ttft_min": min(values) if values else None,
                "ttft_max": max(values) if values else None,
                "ratio_to_cold": ratio(median(values), cold),
                "served": served,
                "samples": values,
                "load_median": median(r.get("load") for r in results),
            }
        summary["cold"]["exit_median"] = median(r.get("exit") for r in rows["cold"])
        self.results["ttft"] = summary
        self.results["memory_phase1"] = memory_rows

    # -- bursts (2, 5, 6) ------------------------------------------------------------------
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
        load_before = load()
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
            "load": load_before,
        }

    @staticmethod
    def summarize(label: str, batches: list[dict[str, Any]], chunks: int) -> dict[str, Any]:
        """p50/p95 over every request of ``batches``; CPU per batch and per request."""
        results = [r for b in batches for r in b["results"]]
        ok = [r for r in results if r["error"] is None]
        served: dict[str, int] = {}
        for b in batches:
            for k, v in b["served"].items():
                served[k] = served.get(k, 0) + v
        parts = ("cli", "server", "fake", "client", "others", "wall")
        cpu_batch = {part: sum(b["cpu"].get(part, 0.0) for b in batches) / max(1, len(batches)) for part in parts}
        return {
            "label": label,
            "requests": len(results),
            "batches": len(batches),
            "errors": len(results) - len(ok),
            "ttft_p50": percentile([r["ttft"] for r in ok], 50),
            "ttft_p95": percentile([r["ttft"] for r in ok], 95),
            "total_p50": percentile([r["total"] for r in ok], 50),
            "total_p95": percentile([r["total"] for r in ok], 95),
            "wall_median": median(b["wall"] for b in batches),
            "served": served,
            "launched": sum(b["spawned"]["launched"] for b in batches),
            "complete": all(r["text"] == expected_text(chunks) for r in ok),
            # CPU seconds per request, by process group: a batch cannot finish faster than
            # its total CPU divided by the cores.
            "cpu_per_request": {
                part: sum(b["cpu"].get(part, 0.0) for b in batches) / max(1, len(results))
                for part in ("cli", "server", "fake", "client")
            },
            "cpu_batch": cpu_batch,
            "load_median": median(b.get("load") for b in batches),
        }

    @staticmethod
    def cpu_bound(row: dict[str, Any], cores: int) -> None:
        """The batch's CPU bound: CLI and server CPU seconds of a batch over the cores (no
        schedule can serve the whole batch sooner), and the same work over the cores the
        machine's other processes left free meanwhile (what this run could have had)."""
        c = row["cpu_batch"]
        work = c["cli"] + c["server"]
        row["cpu_bound"] = work / cores
        others_cores = c["others"] / c["wall"] if c["wall"] else 0.0
        row["others_cores"] = others_cores
        ours = work + c["fake"] + c["client"]
        row["cpu_bound_free"] = ours / max(0.25, cores - others_cores)
        row["ttft_p95_x_bound"] = ratio(row["ttft_p95"], row["cpu_bound"])
        row["total_p95_x_bound"] = ratio(row["total_p95"], row["cpu_bound"])
        row["total_p95_x_bound_free"] = ratio(row["total_p95"], row["cpu_bound_free"])

    # -- 2. concurrency --------------------------------------------------------------------
    def bench_concurrency(self) -> None:
        log("2. concurrency: 8 concurrent follow-ups against their CPU bound; 32 new conversations at once")
        rows: dict[str, dict[str, Any]] = {}
        cores = os.cpu_count() or 1

        def add(name: str, label: str, batches: list[dict[str, Any]], chunks: int) -> None:
            rows[name] = row = self.summarize(label, batches, chunks)
            log(
                f"  {label} (load {row['load_median']}): TTFT p50/p95 {ms(row['ttft_p50'])}/{ms(row['ttft_p95'])} ms, "
                f"total p50/p95 {ms(row['total_p50'])}/{ms(row['total_p95'])} ms, errors {row['errors']}, "
                f"served {row['served']}"
            )

        def single(conversation: Conversation, reply_marker: str) -> dict[str, Any]:
            self.settle()
            before = self.counters()
            with self.cpu_watch() as watch:
                started = time.perf_counter()
                result = self.chat(conversation, reply_marker)
                wall = time.perf_counter() - started
            return {
                "results": [result],
                "wall": wall,
                "served": self.served(before, self.counters()),
                "spawned": result["spawned"],
                "cpu": watch.used,
                "load": result["load"],
            }

        # Warm-up: 8 conversations at once; they stay held.
        self.settle()
        held = [Conversation(f"c8-{i}") for i in range(BURST)]
        self.burst(held, SHORT)
        self.settle(timeout=20)
        # Single follow-ups and rounds of 8 concurrent follow-ups alternate, so both see the
        # same background load on a shared machine; short answers (the batch is CPU work
        # only) and answers of 20 chunks 20 ms apart.
        for reply_marker, chunks, tag in ((SHORT, 5, "short"), (CHAT, 20, "chat")):
            singles, batches = [], []
            for i in range(max(self.n["single"], self.n["rounds8"])):
                if i < self.n["single"]:
                    singles.append(single(held[0], reply_marker))
                if i < self.n["rounds8"]:
                    self.settle()
                    batches.append(self.burst(held, reply_marker))
            what = "short answers" if tag == "short" else "20 chunks 20 ms apart"
            add(f"single_held_{tag}", f"1 follow-up (held), {what}", singles, chunks)
            add(f"c8_held_{tag}", f"8 concurrent follow-ups (held), {what}", batches, chunks)
        batches = []
        for r in range(self.n["rounds32"]):
            self.settle(timeout=20)
            batches.append(self.burst([Conversation(f"n32-{r}-{i}") for i in range(32)], CHAT))
        add("c32_new", f"32 concurrent new conversations (queue over {MAX_PROCESSES} processes)", batches, 20)
        for name, row in rows.items():
            self.cpu_bound(row, cores)
            if name.startswith("c8_held"):
                base = rows[name.replace("c8_held", "single_held")]
                row["ttft_p95_x_single"] = ratio(row["ttft_p95"], base["ttft_p95"])
                row["total_p95_x_single"] = ratio(row["total_p95"], base["total_p95"])
        self.results["concurrency"] = rows

    # -- 3. relay: request to last byte ------------------------------------------------------
    def bench_relay(self) -> None:
        log(f"3. relay: {LONG_CHUNKS} chunks, no delay; request to last byte, server (held) vs the CLI read directly")
        server_runs, direct_runs = [], []
        conversation = Conversation("relay")
        key = "bench-relay"
        self.settle(timeout=20)
        self.chat(conversation, LONG, key)  # warm-up (and the conversation is now held)
        direct = self.spawn_direct()
        direct.turn(f"{LONG} direct warm-up")
        relay_pid = None
        for i in range(self.n["relay"]):
            # Alternating order: both paths see the same drift of the machine's load.
            for path in ("server", "direct") if i % 2 == 0 else ("direct", "server"):
                self.settle(extra_pids=(direct.pid,))
                if path == "server":
                    before = cpu_seconds(self.pool()["pids"])
                    result = self.chat(conversation, LONG, key)
                    relay_pid = self.held_pid_of(before)
                    result["complete"] = result["text"] == expected_text(LONG_CHUNKS)
                    server_runs.append(result)
                else:
                    cpu = self.cpu_snapshot(direct)
                    run = direct.turn(f"{LONG} direct turn {i}")
                    run["cpu"] = self.cpu_since(cpu, direct)
                    run["load"] = load()
                    run["complete"] = run["text"] == expected_text(LONG_CHUNKS)
                    direct_runs.append(run)
            log(
                f"  run {i + 1} (load {load()}): request to last byte: server {ms(server_runs[-1]['last'])} ms, "
                f"direct {ms(direct_runs[-1]['last'])} ms"
            )
        self.end_direct(direct)

        def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
            ok = [r for r in runs if r.get("error") is None]
            last = median(r["last"] for r in ok)
            return {
                "last_median": last,
                "last": [r["last"] for r in ok],
                "rate_median": LONG_CHUNKS / last if last else None,
                "ttft_median": median(r["ttft"] for r in ok),
                "total_median": median(r["total"] for r in ok),
                "chunks": [r["chunks"] for r in runs],
                "complete": all(r.get("complete") for r in runs),
                "errors": len(runs) - len(ok),
                "load_median": median(r.get("load") for r in runs),
                "cpu_median": {
                    part: median(r["cpu"][part] for r in runs) for part in ("cli", "server", "fake", "client")
                },
            }

        out = {"server": summary(server_runs), "direct": summary(direct_runs)}
        out["ratio"] = ratio(out["direct"]["last_median"], out["server"]["last_median"])
        if relay_pid is not None:
            out["held_pid_memory"] = memory(relay_pid)
        self.results["relay"] = out

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

    # -- 5. bursts of new conversations --------------------------------------------------------
    def spare_memory(self) -> list[dict[str, float]]:
        """RSS/USS of the idle processes that never served a turn (spares): the pool's held
        conversation is the idle process that used the most CPU."""
        status = self.pool()
        cpu = cpu_seconds(status["pids"])
        held = set(sorted(cpu, key=cpu.get, reverse=True)[: status["held"]])
        return [m for m in (memory(pid) for pid in status["pids"] if pid not in held) if m]

    def bench_bursts(self, name: str, label: str, variation: dict[str, str]) -> None:
        log(f"5. bursts of {BURST} new conversations at once ({label})")
        self.start_server(
            variation,
            MAX_PROCESSES=str(BURST_MAX_PROCESSES),
            MAX_CONVERSATIONS="1",  # each burst's conversations make room again at once
            QUEUE_SIZE="64",
            QUEUE_TIMEOUT_SECONDS="120",
        )
        self.settle(spares=1, timeout=30)
        system = f"{SYSTEM} (Burst profile.)"
        # The first new conversation with this profile is cold and makes it known; the next
        # ones find its spare.
        self.chat(Conversation("burst-first", system), SHORT)
        singles = []
        for i in range(self.n["burst_single"]):
            self.settle_targets()
            singles.append(self.chat(Conversation(f"burst-single-{i}", system), SHORT))
        self.settle_targets()
        first = self.burst([Conversation(f"b0-{i}", system) for i in range(BURST)], SHORT)
        log(f"  first burst (load {first['load']}): served {first['served']}")
        settled, spares_memory, targets = [], [], []
        for r in range(self.n["bursts"]):
            self.settle_targets()
            status = self.pool()
            targets.append(dict(status["spare_targets"]))
            spares_memory.append(self.spare_memory())
            batch = self.burst([Conversation(f"b{r + 1}-{i}", system) for i in range(BURST)], SHORT)
            settled.append(batch)
            ttfts = [x["ttft"] for x in batch["results"] if x["ttft"] is not None]
            log(
                f"  settled burst {r + 1} (load {batch['load']}, spares {status['spares']}, targets "
                f"{status['spare_targets']}): served {batch['served']}, launched {batch['spawned']['launched']}, "
                f"TTFT p95 {ms(percentile(ttfts, 95))} ms"
            )
        single_ok = [x["ttft"] for x in singles if x["error"] is None]
        out: dict[str, Any] = {
            "label": label,
            "variation": variation,
            "single": {
                "n": len(single_ok),
                "ttft_median": median(single_ok),
                "ttft_p95": percentile(single_ok, 95),
                "served": _sum_served(singles),
                "load_median": median(x["load"] for x in singles),
            },
            "first": self.summarize("first burst (cold)", [first], 5),
            "settled": self.summarize("settled bursts", settled, 5),
            "targets": targets,
        }
        cores = os.cpu_count() or 1
        for row in (out["first"], out["settled"]):
            self.cpu_bound(row, cores)
            row["ttft_p95_x_single"] = ratio(row["ttft_p95"], out["single"]["ttft_median"])
        flat = [m for sample in spares_memory for m in sample]
        out["spares_memory"] = {
            "count_median": median(len(sample) for sample in spares_memory),
            "rss_median": median(m["rss_mb"] for m in flat),
            "uss_median": median(m["uss_mb"] for m in flat),
            "uss_total_median": median(sum(m["uss_mb"] for m in sample) for sample in spares_memory),
            "rss_total_median": median(sum(m["rss_mb"] for m in sample) for sample in spares_memory),
        }
        self.results.setdefault("bursts", {})[name] = out

    # -- 6. Open WebUI task bursts ------------------------------------------------------------
    async def _tasks(self, history: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=300) as client:
            bodies = []
            for instruction, output, num_predict in TASKS.values():
                prompt = (
                    f"### Task:\n{instruction}\n### Output:\nJSON format: {output}\n### Chat History:\n"
                    f"<chat_history>\n{history}\n</chat_history>"
                )
                body: dict[str, Any] = {
                    "model": "sonnet:latest",  # the chat's model; the bridge answers with TASK_MODEL
                    "messages": [{"role": "user", "content": prompt}],
                    "stream": False,
                }
                if num_predict is not None:
                    body["options"] = {"num_predict": num_predict}
                bodies.append(body)
            return list(await asyncio.gather(*(aollama_chat(client, self.server.ollama_url, b) for b in bodies)))

    def bench_open_webui(self, name: str, label: str, variation: dict[str, str]) -> None:
        log(f"6. Open WebUI: after each answer, title, tags and follow-ups at once (default settings; {label})")
        self.start_server(variation)
        self.settle(spares=1, timeout=30)
        messages: list[dict[str, str]] = []
        rounds = []
        for r in range(self.n["webui_rounds"]):
            self.settle_targets(timeout=20)  # the user reads the answer and types the next question
            before = self.counters()
            asked = [*messages, {"role": "user", "content": f"{SHORT} Open WebUI question {r + 1}"}]

            async def answer(asked=asked) -> dict[str, Any]:
                async with httpx.AsyncClient(timeout=300) as client:
                    body = {"model": "sonnet:latest", "messages": asked, "stream": True}
                    return await aollama_chat(client, self.server.ollama_url, body)

            chat = asyncio.run(answer())
            if chat["error"] is None:
                messages = [*asked, {"role": "assistant", "content": chat["text"]}]
            middle = self.counters()
            history = "\n".join(f"{m['role'].upper()}: {m['content']}" for m in messages[-2:])
            load_before = load()
            tasks = asyncio.run(self._tasks(history))
            after = self.counters()
            status = self.pool()
            rounds.append(
                {
                    "chat_ttft": chat["ttft"],
                    "chat_served": self.served(before, middle),
                    "tasks_served": self.served(middle, after),
                    "task_totals": [t["total"] for t in tasks],
                    "errors": [t["error"] for t in tasks if t["error"]] + ([chat["error"]] if chat["error"] else []),
                    "targets_after": status["spare_targets"],
                    "models": status["models"],
                    "load": load_before,
                }
            )
            log(
                f"  answer {r + 1} (load {load_before}): chat {ms(chat['ttft'])} ms {rounds[-1]['chat_served']}; "
                f"tasks served {rounds[-1]['tasks_served']}, slowest {ms(max(rounds[-1]['task_totals']))} ms; "
                f"spare targets then {status['spare_targets']}"
            )
        self.results.setdefault("open_webui", {})[name] = {"label": label, "variation": variation, "rounds": rounds}

    # -- 7. spares over time, default settings ----------------------------------------------
    def bench_default_pool(self) -> None:
        """New conversations one after another (each stays held) on a server with the default
        MAX_PROCESSES and MAX_CONVERSATIONS, and the default profile (the start-up spare's)."""
        log("7. new conversations one after another with the default pool settings")
        self.start_server()
        self.settle(spares=1, timeout=30)
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
                    "load": result["load"],
                    "after": {k: status[k] for k in ("processes", "held", "spares")},
                }
            )
            log(
                f"  conversation {i + 1} (load {result['load']}): TTFT {ms(result['ttft'])} ms, served "
                f"{result['served']}, {result['spawned']}, then {runs[-1]['after']}"
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
        only = {name for name in self.args.only.split(",") if name} or set(SECTIONS)
        unknown = only - set(SECTIONS)
        if unknown:
            raise ValueError(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
        if "ttft" in only:
            self.bench_ttft()
        if "concurrency" in only:
            self.bench_concurrency()
        if "relay" in only:
            self.bench_relay()
        self.bench_memory_end()
        if "bursts" in only:
            for name, label, variation in BURST_VARIANTS:
                self.bench_bursts(name, label, variation)
        if "webui" in only:
            for name, label, variation in WEBUI_VARIANTS:
                self.bench_open_webui(name, label, variation)
        if "default" in only:
            self.bench_default_pool()


SECTIONS = ("ttft", "concurrency", "relay", "bursts", "webui", "default")


def _brief(status: dict[str, Any]) -> dict[str, Any]:
    return {k: status[k] for k in ("processes", "starting", "spare", "held", "busy", "stopping", "spare_targets")}


def _sum_served(results: list[dict[str, Any]]) -> dict[str, int]:
    served: dict[str, int] = {}
    for r in results:
        for k, v in (r.get("served") or {}).items():
            served[k] = served.get(k, 0) + v
    return served


# -- reporting ------------------------------------------------------------------------------
def mb(sample: dict[str, float] | None, key: str) -> str:
    return "n/a" if not sample or sample.get(key) is None else f"{sample[key]:.0f}"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


def _served(served: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in served.items()) or "–"


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
            "| Path | Runs | TTFT median (ms) | min–max (ms) | × cold `claude -p` | Served by | CLI processes started "
            "| Load (median) |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        labels = [
            ("cold", "cold `claude -p` (direct, server's flags and env)"),
            ("spare", "**server, new conversation (warm spare, settled)**"),
            ("held", "**server, follow-up (held conversation)**"),
            ("fresh_spare", "server, new conversation, spare taken as soon as /health lists it"),
            ("unseen", "server, new conversation, unseen system prompt (cold through the server)"),
            ("direct_first", "floor: persistent CLI read directly, first turn (launched as the pool does)"),
            ("direct_first_plain", "floor: the same without the `initialize` handshake at launch"),
            ("direct_later", "floor: persistent CLI read directly, later turn (what a follow-up can do)"),
        ]
        for name, label in labels:
            row = t[name]
            out.append(
                f"| {label} | {row['n']} | {ms(row['ttft_median'])} | {ms(row['ttft_min'])}–{ms(row['ttft_max'])} "
                f"| {times(row['ratio_to_cold'])} | {_served(row['served'])} "
                f"| {row['started'] if row['served'] else '–'} | {row['load_median']} |"
            )
        out.append("")
        out.append(
            f"Target ≤ 0.25× cold: new conversation {times(t['spare']['ratio_to_cold'])} "
            f"{verdict(_le(t['spare']['ratio_to_cold'], 0.25))}; follow-up {times(t['held']['ratio_to_cold'])} "
            f"{verdict(_le(t['held']['ratio_to_cold'], 0.25))}. The first turn of a spare read directly costs "
            f"{times(t['direct_first']['ratio_to_cold'])} a cold start before the server adds anything; "
            f"a later turn {times(t['direct_later']['ratio_to_cold'])}."
        )
        out.append("")
    c = results.get("concurrency")
    if c:
        out.append("### 2. Concurrent streaming chats against the CPU bound")
        out.append("")
        out.append(
            "| Workload | Requests | TTFT p50 / p95 (ms) | Total p50 / p95 (ms) | Batch wall (ms) | CPU bound (ms) "
            "| p95 TTFT / total × bound | CPU ms per batch: CLI / server / fake+client | Other processes (cores) "
            "| Errors | Served by | Load |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
        for row in c.values():
            cb = row["cpu_batch"]
            out.append(
                f"| {row['label']} | {row['requests']} | {ms(row['ttft_p50'])} / {ms(row['ttft_p95'])} "
                f"| {ms(row['total_p50'])} / {ms(row['total_p95'])} | {ms(row['wall_median'])} | {ms(row['cpu_bound'])} "
                f"| {times(row['ttft_p95_x_bound'])} / {times(row['total_p95_x_bound'])} "
                f"| {ms(cb['cli'])} / {ms(cb['server'])} / {ms(cb['fake'] + cb['client'])} "
                f"| {row['others_cores']:.2f} | {row['errors']} | {_served(row['served'])} | {row['load_median']} |"
            )
        out.append("")
        for tag in ("short", "chat"):
            h8 = c.get(f"c8_held_{tag}")
            if not h8:
                continue
            out.append(
                f"8 concurrent follow-ups ({tag}): p95 total {ms(h8['total_p95'])} ms against a CPU bound of "
                f"{ms(h8['cpu_bound'])} ms ((CLI {ms(h8['cpu_batch']['cli'])} + server "
                f"{ms(h8['cpu_batch']['server'])} ms) / {meta['cpus']} cores) = {times(h8['total_p95_x_bound'])}; "
                f"TTFT p95 {times(h8['ttft_p95_x_bound'])} the bound. Target ≤ 1.2×: "
                f"{verdict(_le(h8['total_p95_x_bound'], 1.2))}. Meanwhile other processes of the machine used "
                f"{h8['others_cores']:.2f} cores; on the cores they left, the whole run's work (fake and client "
                f"included) needed {ms(h8['cpu_bound_free'])} ms = {times(h8['total_p95_x_bound_free'])}."
            )
            out.append("")
    r = results.get("relay")
    if r:
        out.append(f"### 3. Relay ({LONG_CHUNKS} chunks, no delay; request to last text byte; median of runs)")
        out.append("")
        out.append(
            "| Path | Request → last byte (ms) | Chunks/s | TTFT (ms) | Complete | CPU ms per answer: CLI / server "
            "/ fake / client | Load |"
        )
        out.append("|---|---|---|---|---|---|---|")
        for name, label in (
            ("direct", "turn written to a persistent CLI read directly"),
            ("server", "server, streaming (held conversation)"),
        ):
            row = r[name]
            out.append(
                f"| {label} | {ms(row['last_median'])} | {row['rate_median'] or 0:,.0f} | {ms(row['ttft_median'])} "
                f"| {'yes' if row['complete'] else 'NO'} | {_cpu(row['cpu_median'])} | {row['load_median']} |"
            )
        out.append("")
        out.append(f"Target ≥ 95%: direct / server = {_pct(r['ratio'])} {verdict(_ge(r['ratio'], 0.95))}.")
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
                f"| CLI, held conversation after {1 + len(r['server']['last'])} answers of {LONG_CHUNKS} chunks | 1 "
                f"| {mb(hp, 'rss_mb')} | {mb(hp, 'uss_mb')} |"
            )
        out.append(
            f"| all idle CLI processes at the end ({me['held']} held, {me['spares']} spares) | {me['cli_count']} "
            f"| {_fmt(me['cli_rss_median'])} (total {_fmt(me['cli_rss_total'])}) "
            f"| {_fmt(me['cli_uss_median'])} (total {_fmt(me['cli_uss_total'])}) |"
        )
        out.append("")
    b = results.get("bursts")
    if b:
        out.append(
            f"### 5. {BURST} new conversations at once (short answers; MAX_PROCESSES={BURST_MAX_PROCESSES}, "
            "MAX_CONVERSATIONS=1)"
        )
        out.append("")
        out.append(
            "| Spares a profile | Burst | Bursts | TTFT p50 / p95 (ms) | p95 × single new | CPU bound (ms) "
            "| p95 × bound | Served by | CLI launches (burst and refill) | Other processes (cores) | Load |"
        )
        out.append("|---|---|---|---|---|---|---|---|---|---|---|")
        for run in b.values():
            single = run["single"]
            out.append(
                f"| {run['label']} | single new conversation (spare) | {single['n']} | {ms(single['ttft_median'])} "
                f"/ {ms(single['ttft_p95'])} | – | – | – | {_served(single['served'])} | – | – | {single['load_median']} |"
            )
            for row in (run["first"], run["settled"]):
                out.append(
                    f"| {run['label']} | {row['label']} | {row['batches']} | {ms(row['ttft_p50'])} / {ms(row['ttft_p95'])} "
                    f"| {times(row['ttft_p95_x_single'])} | {ms(row['cpu_bound'])} | {times(row['ttft_p95_x_bound'])} "
                    f"| {_served(row['served'])} | {row['launched']} | {row['others_cores']:.2f} | {row['load_median']} |"
                )
        out.append("")
        for run in b.values():
            sm = run["spares_memory"]
            out.append(
                f"{run['label']}: before each settled burst {_fmt(sm['count_median'])} idle spares (targets "
                f"{run['targets'][-1] if run['targets'] else 'n/a'}), {_fmt(sm['uss_total_median'])} MB USS together "
                f"({_fmt(sm['uss_median'])} MB each; RSS {_fmt(sm['rss_median'])} MB each, shared pages counted in every "
                f"one). Target p95 ≤ 2× a single new conversation: {times(run['settled']['ttft_p95_x_single'])} "
                f"{verdict(_le(run['settled']['ttft_p95_x_single'], 2.0))}."
            )
            out.append("")
    for w in (results.get("open_webui") or {}).values():
        out.append(f"### 6. Open WebUI: title, tags and follow-ups at once after each answer ({w['label']})")
        out.append("")
        out.append(
            "| Answer | Chat TTFT (ms) | Chat served by | Tasks served by | Slowest task (ms) | Errors | Spare targets after | Load |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for i, rnd in enumerate(w["rounds"], 1):
            out.append(
                f"| {i} | {ms(rnd['chat_ttft'])} | {_served(rnd['chat_served'])} | {_served(rnd['tasks_served'])} "
                f"| {ms(max(rnd['task_totals']))} | {len(rnd['errors'])} | {rnd['targets_after']} | {rnd['load']} |"
            )
        out.append("")
        later = w["rounds"][1:]
        by_spare = sum(rnd["tasks_served"].get("spare", 0) for rnd in later)
        out.append(
            f"From the second answer on, {by_spare} of {3 * len(later)} task requests were served by spares: "
            f"{verdict(by_spare == 3 * len(later) if later else None)}."
        )
        out.append("")
    d = results.get("default_pool")
    if d:
        out.append(f"### 7. New conversations one after another, default pool settings ({d['settings']})")
        out.append("")
        out.append("| # | TTFT (ms) | Served by | Started / evicted | Then: processes, held, spares | Load |")
        out.append("|---|---|---|---|---|---|")
        for i, run in enumerate(d["runs"], 1):
            after = run["after"]
            out.append(
                f"| {i} | {ms(run['ttft'])} | {_served(run['served'])} | {run['spawned']['launched']} / "
                f"{run['spawned']['evictions']} | {after['processes']}, {after['held']}, {after['spares']} | {run['load']} |"
            )
        out.append("")
    return "\n".join(out)


def readme_table(results: dict[str, Any]) -> str:
    t, c, r = results.get("ttft"), results.get("concurrency"), results.get("relay")
    ms_, m1 = results.get("memory_start"), results.get("memory_phase1")
    meta = results["meta"]
    lines = [
        (
            f"Measured with `python bench/bench_pool.py{' --quick' if meta['quick'] else ''}` (CLI {meta['cli_version']}, "
            f"{meta['cpus']} cores shared with other test runs: load average {meta['load_start'].split()[0]} at the start, "
            f"{meta['load_end'].split()[0]} at the end; fake upstream on loopback; medians):"
        ),
        "",
        "| Benchmark | Result | Target | | Load |",
        "|---|---|---|---|---|",
    ]
    if t:
        cold = t["cold"]["ttft_median"]
        lines.append(
            f"| TTFT, new conversation (warm spare) | {ms(t['spare']['ttft_median'])} ms vs {ms(cold)} ms cold "
            f"`claude -p` = {times(t['spare']['ratio_to_cold'])} | ≤ 0.25× | "
            f"{_mark(_le(t['spare']['ratio_to_cold'], 0.25))} | {t['spare']['load_median']} |"
        )
        lines.append(
            f"| TTFT, first turn of a spare read directly (no server) | {ms(t['direct_first']['ttft_median'])} ms = "
            f"{times(t['direct_first']['ratio_to_cold'])} (without the `initialize` handshake "
            f"{ms(t['direct_first_plain']['ttft_median'])} ms = {times(t['direct_first_plain']['ratio_to_cold'])}) "
            f"| – | | {t['direct_first']['load_median']} |"
        )
        lines.append(
            f"| TTFT, follow-up (held conversation) | {ms(t['held']['ttft_median'])} ms = "
            f"{times(t['held']['ratio_to_cold'])} | ≤ 0.25× | {_mark(_le(t['held']['ratio_to_cold'], 0.25))} "
            f"| {t['held']['load_median']} |"
        )
    if c:
        for tag, what in (("short", "short answers"), ("chat", "20 chunks 20 ms apart")):
            h8 = c.get(f"c8_held_{tag}")
            if not h8:
                continue
            lines.append(
                f"| 8 concurrent follow-ups ({what}), p95 total vs CPU bound | {ms(h8['total_p95'])} ms vs "
                f"{ms(h8['cpu_bound'])} ms ((CLI + server CPU) / {meta['cpus']} cores) = {times(h8['total_p95_x_bound'])}; "
                f"other processes used {h8['others_cores']:.2f} cores meanwhile | ≤ 1.2× "
                f"| {_mark(_le(h8['total_p95_x_bound'], 1.2))} | {h8['load_median']} |"
            )
        n32 = c.get("c32_new")
        if n32:
            lines.append(
                f"| 32 concurrent new conversations (queued over {MAX_PROCESSES} processes) | TTFT p50 / p95 "
                f"{ms(n32['ttft_p50'])} / {ms(n32['ttft_p95'])} ms; {n32['errors']} errors | – | | {n32['load_median']} |"
            )
    if r:
        lines.append(
            f"| Relay, {LONG_CHUNKS} fast chunks, request to last byte | server {ms(r['server']['last_median'])} ms vs "
            f"{ms(r['direct']['last_median'])} ms reading the CLI directly = {_pct(r['ratio'])} | ≥ 95% "
            f"| {_mark(_ge(r['ratio'], 0.95))} | {r['server']['load_median']} |"
        )
    for run in (results.get("bursts") or {}).values():
        s = run["settled"]
        sm = run["spares_memory"]
        lines.append(
            f"| {BURST} new conversations at once, {run['label']}: p95 TTFT | {ms(s['ttft_p95'])} ms vs "
            f"{ms(run['single']['ttft_median'])} ms for one = {times(s['ttft_p95_x_single'])}; served "
            f"{_served(s['served'])}; CPU bound {ms(s['cpu_bound'])} ms; spares {_fmt(sm['count_median'])} × "
            f"{_fmt(sm['uss_median'])} MB USS = {_fmt(sm['uss_total_median'])} MB | ≤ 2× "
            f"| {_mark(_le(s['ttft_p95_x_single'], 2.0))} | {s['load_median']} |"
        )
    for w in (results.get("open_webui") or {}).values():
        later = w["rounds"][1:]
        by_spare = sum(rnd["tasks_served"].get("spare", 0) for rnd in later)
        first = w["rounds"][0]["tasks_served"] if w["rounds"] else {}
        lines.append(
            f"| Open WebUI's 3 task requests after an answer, {w['label']} | first answer: {_served(first)}; from the second on "
            f"{by_spare} of {3 * len(later)} by spares | all by spares | {_mark(by_spare == 3 * len(later) if later else None)} "
            f"| {median(rnd['load'] for rnd in w['rounds'])} |"
        )
    d = results.get("default_pool")
    if d:
        spare_runs = [x["ttft"] for x in d["runs"] if x["served"].get("spare")]
        cold_runs = [x["ttft"] for x in d["runs"] if x["served"].get("cold")]
        lines.append(
            f"| {len(d['runs'])} new conversations in a row, default settings | {len(spare_runs)} served by a spare "
            f"(median {ms(median(spare_runs))} ms), {len(cold_runs)} cold (median {ms(median(cold_runs))} ms) | – | "
            f"| {median(x['load'] for x in d['runs'])} |"
        )
    if ms_ and m1:
        spares = [s for s in ms_["spares"] if s] + m1["spare"]
        lines.append(
            f"| Memory per idle CLI process, RSS / USS | spare {_med(spares, 'rss_mb')} / {_med(spares, 'uss_mb')} MB, "
            f"held {_med(m1['held'], 'rss_mb')} / {_med(m1['held'], 'uss_mb')} MB | – | | |"
        )
        lines.append(
            f"| Memory of the server, RSS / USS | {mb(ms_['server'], 'rss_mb')} / {mb(ms_['server'], 'uss_mb')} MB "
            "at start | – | | |"
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
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated sections to run (ttft,concurrency,relay,bursts,webui,default); default: all",
    )
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
        "only": args.only,
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
