"""Bounded load test on loopback: the real server and the real CLI against the fake upstream.

    python bench/load.py            # full run: 50 concurrent clients, then 200 disconnect requests
    python bench/load.py --quick    # CI size: 20 concurrent clients, then 40 disconnect requests

Phase 1 (*concurrency*): N clients at once against a pool of MAX_PROCESSES=4, half through
the OpenAI API and half through the Ollama API, streaming and not. Every fake answer carries
the request's own token, so an answer is checked to be exactly the one for its request (no
cross-talk). Each request ends one way: answered correctly, told to retry (503 with
Retry-After), wrong, an error, lost (connection dropped, stream cut
without its end) or hung (no answer within the per-request timeout).

Phase 2 (*disconnects*): M requests, a bounded number at a time, about half of whose clients
leave early: a streaming client closes the response after the first content chunk; a
non-streaming one is either cancelled once its request reached the upstream, or gives up on a
short read timeout (sometimes while still queued). The fake upstream must record every
request of a client that left as ended within STOP_BOUND seconds of the client leaving.

Throughout, the server's process tree is sampled (psutil): the number of CLI processes, their
total RSS and the server's own RSS. After each phase, once the pool is idle, every CLI process
under the server must be one the pool reports in /health; after shutdown, no process the
server started may remain (processes are also looked for system-wide by their working
directory, in case one escaped the server's tree).

Prints a markdown table (for the README), writes bench/results/load.json, and exits non-zero
if any pass condition fails. The CLI is CLAUDE_CLI_PATH or .cache/cli/node_modules/.bin/claude
(what scripts/test installs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import ssl
import statistics
import sys
import threading
import time
import traceback
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import contextlib

from fake_upstream import FakeAnthropic, Reply  # tests/ is put on the path just above
from harness import BridgeServer

MAX_PROCESSES = 4
MIB = 1024 * 1024
RESULTS = ROOT / "bench" / "results" / "load.json"
TOKEN_RE = re.compile(r"\btok-[a-z0-9]+\b")

KINDS = [("openai", False), ("openai", True), ("ollama", False), ("ollama", True)]
GOOD = ("ok", "retry", "left")  # "left": the client disconnected on purpose
BAD = ("wrong", "error", "lost", "hung")


@dataclass
class Config:
    concurrent: int = 50
    disconnect_requests: int = 200
    disconnect_concurrency: int = 16
    disconnect_share: float = 0.5
    request_timeout: float = 120.0  # a request with no outcome by then is "hung"
    stop_bound: float = 2.0  # the upstream must be stopped this soon after a client leaves
    idle_timeout: float = 20.0  # how long the pool may take to settle after a phase
    cli_rss_bound_mib: int = (MAX_PROCESSES + 1) * 320  # all CLI processes together
    server_rss_bound_mib: int = 400
    seed: int = 20240601

    @classmethod
    def quick(cls, **overrides: Any) -> Config:
        return cls(**{"concurrent": 20, "disconnect_requests": 40, **overrides})


@dataclass
class Outcome:
    phase: str
    token: str
    api: str
    stream: bool
    mode: str  # complete | drop-first-chunk | drop-upstream-started | read-timeout
    kind: str = "error"  # ok | retry | left | wrong | error | lost | hung
    status: int | None = None
    detail: str = ""
    started: float = 0.0
    seconds: float = 0.0
    left_at: float | None = None


# -- the fake upstream's answers ----------------------------------------------------------------
def short_reply(token: str) -> Reply:
    return Reply(chunks=[f"[{token}", "|one", "|two", f"|{token}]"], delay=0.05)


def long_reply(token: str) -> Reply:
    """For clients that will leave: long enough (about 4 s) that they leave mid-answer."""
    return Reply(chunks=[f"[{token}"] + ["|tick"] * 40 + [f"|{token}]"], delay=0.1)


class Upstream:
    """The fake upstream, answering each request with its own token; indexes records by token."""

    def __init__(self) -> None:
        self.fake = FakeAnthropic().start()
        self.long_tokens: set[str] = set()
        self.fake.handler = self._handle
        self._seen = 0
        self._by_token: dict[str, list] = {}
        self.untokened = 0  # upstream calls carrying no token (the CLI's own side calls)

    @staticmethod
    def token_of(body_messages: list[tuple[str, str]]) -> str | None:
        users = [text for role, text in body_messages if role == "user"]
        match = TOKEN_RE.search(users[-1]) if users else None
        return match.group(0) if match else None

    def _handle(self, body: dict[str, Any]) -> Reply | None:
        messages = [
            (
                m.get("role"),
                m["content"]
                if isinstance(m.get("content"), str)
                else "".join(b.get("text", "") for b in m.get("content", []) if isinstance(b, dict)),
            )
            for m in body.get("messages", [])
        ]
        token = self.token_of(messages)
        if token is None:
            return None
        return long_reply(token) if token in self.long_tokens else short_reply(token)

    def _index(self) -> None:
        received = self.fake.received
        while self._seen < len(received):
            record = received[self._seen]
            self._seen += 1
            token = self.token_of(record.plain_messages())
            if token is None:
                self.untokened += 1
            else:
                self._by_token.setdefault(token, []).append(record)

    def records(self, token: str) -> list:
        self._index()
        return self._by_token.get(token, [])

    def stop(self) -> None:
        self.fake.stop()


def expected(token: str, long: bool = False) -> str:
    return (long_reply(token) if long else short_reply(token)).text


# -- sampling the server's process tree -------------------------------------------------------
def is_cli(proc: psutil.Process) -> bool:
    try:
        cmd = proc.cmdline()
        return "claude" in proc.name() or bool(cmd and "claude" in cmd[0])
    except psutil.Error:
        return False


class Sampler(threading.Thread):
    """Samples CLI process count, total CLI RSS, server RSS and the pool's own report
    (/health) every ``interval`` seconds."""

    def __init__(self, server: BridgeServer, interval: float = 0.2):
        super().__init__(daemon=True)
        self.server = server
        self.interval = interval
        self.phase = "start"
        self.stats: dict[str, dict[str, float]] = {}
        self.seen_cli: dict[int, float] = {}  # pid -> create_time, every CLI process ever seen
        self.over: list[dict[str, Any]] = []  # snapshots of moments with more than MAX_PROCESSES
        self.in_pool: set[int] = set()  # pids the pool has reported
        self.let_go_at: dict[int, float] = {}  # pid -> first seen alive after leaving the pool
        self.lingered: dict[int, float] = {}  # pid -> how long it was then still seen alive
        self._halt = threading.Event()

    def _bump(self, key: str, value: float) -> None:
        for phase in (self.phase, "all"):
            stats = self.stats.setdefault(phase, {})
            stats[key] = max(stats.get(key, 0), value)

    def sample(self) -> None:
        """One look at the tree, bracketed by two looks at the pool: a CLI process that is in
        neither pool report (nor starting) is one the pool has let go of but that still runs."""
        pool_before = self._pool()
        try:
            root = psutil.Process(self.server.proc.pid)
            server_rss = root.memory_info().rss
            children = root.children(recursive=True)
        except psutil.Error:
            return
        cli: dict[int, float] = {}
        tree_rss = 0
        for child in children:
            try:
                if child.status() == psutil.STATUS_ZOMBIE:
                    continue
                tree_rss += child.memory_info().rss
                # CLI processes are the server's own children: some CLI versions run helpers
                # (2.1.277: ripgrep as `claude.exe rg`, git) that are part of one process.
                if is_cli(child):
                    self.seen_cli.setdefault(child.pid, child.create_time())  # all, for the leftover check
                    if child.ppid() == root.pid:
                        cli[child.pid] = child.create_time()
            except psutil.Error:
                continue
        pool_after = self._pool()
        self._bump("server_rss_mib", server_rss / MIB)
        self._bump("cli_rss_mib", tree_rss / MIB)
        self._bump("cli_processes", len(cli))
        if pool_before is None or pool_after is None:
            return
        accounted = set(pool_before["pids"]) | set(pool_after["pids"])
        starting = max(pool_before["starting"], pool_after["starting"])
        let_go = [pid for pid in cli if pid not in accounted]
        now = time.monotonic()
        self.in_pool.update(accounted)
        stopping = 0  # (a let-go pid the pool never listed is one still being started)
        for pid in let_go:
            if pid in self.in_pool:  # it served in the pool, and the pool has let it go
                stopping += 1
                self.let_go_at.setdefault(pid, now)
                self.lingered[pid] = now - self.let_go_at[pid]
        self._bump("pool_processes", max(p["processes"] + p["starting"] for p in (pool_before, pool_after)))
        self._bump("pool_waiting", max(pool_before["waiting"], pool_after["waiting"]))
        self._bump("stopping_processes", stopping)
        if len(cli) > MAX_PROCESSES and len(self.over) < 20:
            now = time.time()
            self.over.append(
                {
                    "phase": self.phase,
                    "cli_pids": {pid: f"{now - created:.1f} s old" for pid, created in sorted(cli.items())},
                    "pool_pids": sorted(accounted),
                    "pool_starting": starting,
                }
            )

    def _pool(self) -> dict[str, Any] | None:
        asked = time.monotonic()
        try:
            pool = self._http.get(f"{self.server.base_url}/health", timeout=5).json()["pool"]
        except (httpx.HTTPError, ValueError, KeyError):
            pool = None
        self._bump("health_latency_s", time.monotonic() - asked)  # how responsive the server stays
        return pool

    def run(self) -> None:
        with httpx.Client() as self._http:
            while not self._halt.is_set():
                self.sample()
                self._halt.wait(self.interval)

    def halt(self) -> None:
        self._halt.set()
        self.join(5)


# -- clients ----------------------------------------------------------------------------------
_SSL = ssl.create_default_context()  # shared: httpx would otherwise build one per client


def request_body(api: str, stream: bool, token: str) -> tuple[str, dict[str, Any]]:
    prompt = f"Load test request {token}. Answer with the token."
    messages = [{"role": "user", "content": prompt}]
    if api == "openai":
        return "/chat/completions", {"model": "sonnet", "stream": stream, "messages": messages}
    return "/api/chat", {"model": "sonnet", "stream": stream, "messages": messages}


def refusal(api: str, response: httpx.Response) -> tuple[str, str]:
    """A non-200 answer: 'retry' if it is the busy status (503, a full queue, on both APIs:
    429 is a refused account) with Retry-After, else 'error'."""
    busy = 503
    detail = response.text[:200]
    if response.status_code == busy:
        if response.headers.get("retry-after", "").isdigit():
            return "retry", ""
        return "error", f"{response.status_code} without Retry-After: {detail}"
    return "error", f"HTTP {response.status_code}: {detail}"


def parse_whole(api: str, payload: dict[str, Any]) -> str:
    if api == "openai":
        return payload["choices"][0]["message"]["content"] or ""
    return payload["message"]["content"] or ""


async def read_stream(api: str, response: httpx.Response, leave_after_first: bool) -> tuple[str, str, str]:
    """Read an SSE (OpenAI) or NDJSON (Ollama) stream. Returns (kind, text, detail) where kind
    is 'ok' (complete), 'left' (left after the first content chunk), 'error' (an in-band error)
    or 'lost' (the stream ended without its end marker)."""
    text: list[str] = []
    async for line in response.aiter_lines():
        if not line.strip():
            continue
        if api == "openai":
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return "ok", "".join(text), ""
            frame = json.loads(data)
            if "error" in frame:
                return "error", "".join(text), f"in-band error: {frame['error']}"
            for choice in frame.get("choices", []):
                piece = (choice.get("delta") or {}).get("content")
                if piece:
                    text.append(piece)
        else:
            frame = json.loads(line)
            if "error" in frame:
                return "error", "".join(text), f"in-band error: {frame['error']}"
            piece = (frame.get("message") or {}).get("content")
            if piece:
                text.append(piece)
            if frame.get("done"):
                return "ok", "".join(text), ""
        if leave_after_first and text:
            return "left", "".join(text), ""
    return "lost", "".join(text), "the stream ended without its end marker"


async def one_request(server: BridgeServer, upstream: Upstream, out: Outcome, cfg: Config, rng: random.Random) -> None:
    """Run one client; fills ``out``. A fresh connection per client, closed when it is done."""
    path, body = request_body(out.api, out.stream, out.token)
    url = (server.openai_url if out.api == "openai" else server.ollama_url) + path
    long = out.mode != "complete"
    timeout = httpx.Timeout(cfg.request_timeout + 30, connect=10)
    if out.mode == "read-timeout":
        timeout = httpx.Timeout(cfg.request_timeout + 30, connect=10, read=rng.uniform(0.3, 2.5))
    out.started = time.monotonic()
    async with httpx.AsyncClient(timeout=timeout, verify=_SSL) as client:
        try:
            if out.stream:
                async with client.stream("POST", url, json=body) as response:
                    out.status = response.status_code
                    if response.status_code != 200:
                        await response.aread()
                        out.kind, out.detail = refusal(out.api, response)
                        return
                    kind, text, detail = await read_stream(out.api, response, out.mode == "drop-first-chunk")
                # Leaving the block closed the response (and, unread, its connection).
                if kind == "left":
                    out.left_at = time.monotonic()
                    out.kind = "left" if text.startswith(f"[{out.token}") else "wrong"
                    out.detail = "" if out.kind == "left" else f"first chunk {text[:80]!r}"
                    return
                out.kind, out.detail = kind, detail
                if kind == "ok" and text != expected(out.token, long):
                    out.kind, out.detail = "wrong", f"got {text[:120]!r}"
                return
            if out.mode == "drop-upstream-started":
                task = asyncio.ensure_future(client.post(url, json=body))
                while not task.done() and not upstream.records(out.token):  # noqa: ASYNC110 - polls another process
                    await asyncio.sleep(0.02)
                if not task.done():
                    await asyncio.sleep(rng.uniform(0.0, 0.5))
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                    await client.aclose()
                    out.left_at = time.monotonic()
                    out.kind = "left"
                    return
                response = task.result()
            else:
                try:
                    response = await client.post(url, json=body)
                except httpx.ReadTimeout:
                    await client.aclose()
                    out.left_at = time.monotonic()
                    out.kind = "left"
                    return
            out.status = response.status_code
            if response.status_code != 200:
                out.kind, out.detail = refusal(out.api, response)
                return
            text = parse_whole(out.api, response.json())
            if text == expected(out.token, long):
                out.kind = "ok"
            else:
                out.kind, out.detail = "wrong", f"got {text[:120]!r}"
        except (httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError, httpx.WriteError) as exc:
            out.kind, out.detail = "lost", f"{type(exc).__name__}: {exc}"
        except httpx.HTTPError as exc:
            out.kind, out.detail = "error", f"{type(exc).__name__}: {exc}"
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            out.kind, out.detail = "error", f"unreadable answer: {type(exc).__name__}: {exc}"


async def guarded(server, upstream, out: Outcome, cfg: Config, rng: random.Random) -> Outcome:
    try:
        await asyncio.wait_for(one_request(server, upstream, out, cfg, rng), cfg.request_timeout)
    except TimeoutError:
        out.kind, out.detail = "hung", f"no outcome within {cfg.request_timeout:.0f} s"
    out.seconds = time.monotonic() - out.started
    return out


def new_token(rng: random.Random) -> str:
    return "tok-" + "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(10))


# -- phases -----------------------------------------------------------------------------------
async def phase_concurrent(server, upstream, cfg: Config, rng: random.Random) -> list[Outcome]:
    """Every client at once: half OpenAI, half Ollama, each half streaming and not, shuffled."""
    outcomes = []
    for index in range(cfg.concurrent):
        api = "openai" if index < cfg.concurrent // 2 else "ollama"
        outcomes.append(Outcome("concurrent", new_token(rng), api, index % 2 == 1, "complete"))
    rng.shuffle(outcomes)
    return list(await asyncio.gather(*(guarded(server, upstream, o, cfg, rng) for o in outcomes)))


async def phase_disconnect(server, upstream, cfg: Config, rng: random.Random) -> list[Outcome]:
    """``disconnect_requests`` requests, ``disconnect_concurrency`` at a time; about
    ``disconnect_share`` of the clients leave early."""
    outcomes = []
    for index in range(cfg.disconnect_requests):
        api, stream = KINDS[index % 4]
        mode = "complete"
        if rng.random() < cfg.disconnect_share:
            mode = "drop-first-chunk" if stream else rng.choice(["drop-upstream-started", "read-timeout"])
        token = new_token(rng)
        if mode != "complete":
            upstream.long_tokens.add(token)
        outcomes.append(Outcome("disconnect", token, api, stream, mode))
    rng.shuffle(outcomes)
    gate = asyncio.Semaphore(cfg.disconnect_concurrency)

    async def run(out: Outcome) -> Outcome:
        async with gate:
            return await guarded(server, upstream, out, cfg, rng)

    return list(await asyncio.gather(*(run(o) for o in outcomes)))


# -- checks -----------------------------------------------------------------------------------
def settle(server: BridgeServer, timeout: float) -> dict[str, Any]:
    """Wait for the pool to go idle and for every CLI process under the server to be one the
    pool reports (retired processes take a moment to stop). Returns what was found."""
    started = time.monotonic()
    status = server.wait_idle(timeout)
    extra: set[int] = set()
    while True:
        pool = server.health()["pool"]
        extra = server.cli_pids() - set(pool["pids"])
        if not extra or time.monotonic() - started > timeout:
            break
        time.sleep(0.1)
    return {
        "idle": status["pool"]["busy"] == 0 and status["pool"]["starting"] == 0,
        "settled_s": round(time.monotonic() - started, 2),
        "pool_processes": pool["processes"],
        "pool_pids": pool["pids"],
        "unreported_cli_pids": sorted(extra),
        "counters": pool["counters"],
    }


def upstream_stops(upstream: Upstream, outcomes: list[Outcome], cfg: Config) -> dict[str, Any]:
    """For every client that left: each upstream request it caused ended (dropped or finished)
    within ``stop_bound`` seconds of the client leaving."""
    delays, late, never_ended, before_upstream, dropped, finished, started_after = [], [], [], 0, 0, 0, 0
    for out in outcomes:
        if out.kind != "left":
            continue
        records = upstream.records(out.token)
        if not records:
            before_upstream += 1  # left while queued or starting: the turn never began
            continue
        for record in records:
            if record.ended_at is None:
                never_ended.append(out.token)
                continue
            started_after += record.started > out.left_at
            delay = max(0.0, record.ended_at - out.left_at)
            delays.append(delay)
            dropped += record.disconnected
            finished += record.finished and not record.disconnected
            if delay > cfg.stop_bound:
                late.append(
                    {
                        "token": out.token,
                        "mode": out.mode,
                        "api": out.api,
                        "delay_s": round(delay, 2),
                        "client_waited_s": round(out.left_at - out.started, 2),
                        "upstream_started_after_leaving_s": round(record.started - out.left_at, 2),
                        "upstream_finished": record.finished,
                        "upstream_dropped": record.disconnected,
                    }
                )
    return {
        "left": sum(o.kind == "left" for o in outcomes),
        "left_before_upstream": before_upstream,
        "upstream_dropped": dropped,
        "upstream_finished": finished,
        "upstream_started_after_leaving": started_after,  # turns begun for a client already gone
        "worst_stop_s": round(max(delays), 3) if delays else None,
        "median_stop_s": round(statistics.median(delays), 3) if delays else None,
        "late": late,
        "never_ended": never_ended,
    }


def log_lines_for(server: BridgeServer, token: str) -> list[str]:
    """The server's log lines about one request (LOG_CONTENT is on for this run): the line
    naming its CLI process, its prompt, and its answer if the turn completed."""
    lines = server.log_path.read_text(errors="replace").splitlines()
    found = []
    for index, line in enumerate(lines):
        if token in line:
            if "prompt:" in line and index and "turn on CLI process" in lines[index - 1]:
                found.append(lines[index - 1])
            found.append(line[:300])
    return found


def leftovers(server: BridgeServer, seen: dict[int, float]) -> list[dict[str, Any]]:
    """Processes the server started that are still alive after it stopped: any CLI pid ever
    seen under it, and any process whose working directory is in the server's private home."""
    home = str(server.home)
    found: dict[int, str] = {}
    for pid, created in seen.items():
        try:
            proc = psutil.Process(pid)
            if proc.create_time() == created and proc.status() != psutil.STATUS_ZOMBIE:
                found[pid] = " ".join(proc.cmdline()[:3])
        except psutil.Error:
            pass
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.cwd().startswith(home) and proc.status() != psutil.STATUS_ZOMBIE:
                found[proc.pid] = " ".join(proc.cmdline()[:3])
        except psutil.Error:
            pass
    return [{"pid": pid, "cmd": cmd} for pid, cmd in sorted(found.items())]


def tally(outcomes: list[Outcome]) -> dict[str, Any]:
    kinds = Counter(o.kind for o in outcomes)
    per_kind = {}
    for api, stream in KINDS:
        subset = [o for o in outcomes if o.api == api and o.stream == stream]
        per_kind[f"{api}{'-stream' if stream else ''}"] = dict(Counter(o.kind for o in subset))
    answered = [o.seconds for o in outcomes if o.kind == "ok"]
    refused = [o for o in outcomes if o.kind == "retry"]
    # Admission order: how many requests that arrived after a refused one were answered
    # before it was refused (0 for a FIFO queue that refuses only when full).
    overtaken = [
        sum(
            1
            for a in outcomes
            if a.kind == "ok" and a.started > o.started and a.started + a.seconds < o.started + o.seconds
        )
        for o in refused
    ]
    return {
        "requests": len(outcomes),
        **{kind: kinds.get(kind, 0) for kind in ("ok", "retry", "left", *BAD)},
        "by_api": per_kind,
        "modes": dict(Counter(o.mode for o in outcomes)),
        "answer_p50_s": round(statistics.median(answered), 2) if answered else None,
        "answer_max_s": round(max(answered), 2) if answered else None,
        "refused_after_s": sorted(round(o.seconds, 1) for o in refused),
        "refused_overtaken_by": overtaken,
        "bad": [asdict(o) for o in outcomes if o.kind in BAD][:20],
        # Counted from the responses themselves (the server's access log is off at INFO).
        "statuses": dict(Counter(str(o.status) for o in outcomes if o.status is not None)),
        # 5xx other than the 503 "busy, retry" (counted under retry).
        "status_5xx": sum(1 for o in outcomes if o.status is not None and o.status >= 500 and o.kind != "retry"),
    }


# -- the run ----------------------------------------------------------------------------------
def run(quick: bool = False, cfg: Config | None = None, verbose: bool = True) -> dict[str, Any]:
    """Run both phases; returns the results (``results["passed"]``) and writes the JSON."""
    cfg = cfg or (Config.quick() if quick else Config())
    rng = random.Random(cfg.seed)
    say = print if verbose else (lambda *a, **k: None)
    began = time.monotonic()
    upstream = Upstream()
    # LOG_CONTENT: prompts in the log tie a request (by its token) to its CLI process, so a
    # failed check can be traced; the answers logged show which turns ran to completion.
    server = BridgeServer(upstream.fake.base_url, MAX_PROCESSES=str(MAX_PROCESSES), LOG_CONTENT="true")
    mode = "quick" if quick else "full"
    if cfg != (Config.quick(seed=cfg.seed) if quick else Config(seed=cfg.seed)):
        mode = "custom"
    results: dict[str, Any] = {"mode": mode, "config": asdict(cfg), "max_processes": MAX_PROCESSES}
    checks: list[tuple[str, bool, str]] = []
    sampler = None
    try:
        server.start()
        results["cli_version"] = server.health().get("cli_version")
        sampler = Sampler(server)
        sampler.start()

        say(f"phase 1: {cfg.concurrent} concurrent clients against a pool of {MAX_PROCESSES} ...", flush=True)
        sampler.phase = "concurrent"
        t0 = time.monotonic()
        concurrent = asyncio.run(phase_concurrent(server, upstream, cfg, rng))
        results["concurrent"] = tally(concurrent)
        results["concurrent"]["seconds"] = round(time.monotonic() - t0, 1)
        results["concurrent"]["settle"] = settle(server, cfg.idle_timeout)
        results["concurrent"]["upstream_calls"] = sum(len(upstream.records(o.token)) for o in concurrent)

        say(
            f"phase 2: {cfg.disconnect_requests} requests, {cfg.disconnect_concurrency} at a time, "
            f"~{cfg.disconnect_share:.0%} disconnecting ...",
            flush=True,
        )
        sampler.phase = "disconnect"
        t0 = time.monotonic()
        disconnect = asyncio.run(phase_disconnect(server, upstream, cfg, rng))
        results["disconnect"] = tally(disconnect)
        results["disconnect"]["seconds"] = round(time.monotonic() - t0, 1)
        results["disconnect"]["settle"] = settle(server, cfg.idle_timeout)
        time.sleep(0.5)  # let the fake record the last drops
        results["disconnect"]["upstream"] = upstream_stops(upstream, disconnect, cfg)
        for late in results["disconnect"]["upstream"]["late"]:
            late["server_log"] = log_lines_for(server, late["token"])
        results["untokened_upstream_calls"] = upstream.untokened

        sampler.phase = "shutdown"
        sampler.halt()
        results["memory"] = {
            phase: {k: round(v, 2) for k, v in stats.items()} for phase, stats in sampler.stats.items()
        }
        results["cli_processes_seen"] = len(sampler.seen_cli)
        results["over_max_snapshots"] = sampler.over
        lingered = sorted(sampler.lingered.values())
        results["stopping"] = {
            "processes_seen_stopping": len(lingered),
            "max_linger_s": round(lingered[-1], 2) if lingered else None,
            "median_linger_s": round(statistics.median(lingered), 2) if lingered else None,
        }
        results["server_exit"] = server.stop()
        time.sleep(0.5)
        results["after_stop_leftovers"] = leftovers(server, sampler.seen_cli)
    except Exception:
        results["exception"] = traceback.format_exc()
    finally:
        if sampler is not None and sampler.is_alive():
            sampler.halt()
        server.stop()
        upstream.stop()
    log = server.log_path.read_text(errors="replace") if server.log_path.exists() else ""
    results["server_log"] = {
        "path": str(server.log_path),
        "tracebacks": log.count("Traceback"),
        "errors": sum(" ERROR " in line for line in log.splitlines()),
    }
    results["seconds"] = round(time.monotonic() - began, 1)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if "exception" in results:
        results["passed"] = False
        results["checks"] = [{"check": "the run completed", "passed": False, "detail": results["exception"]}]
        RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
        results["table"] = f"load test aborted:\n{results['exception']}\nserver log {server.log_path}"
        say(results["table"])
        return results

    # -- pass conditions --
    c, d = results["concurrent"], results["disconnect"]
    mem_all = results["memory"].get("all", {})
    for name, phase in (("phase 1", c), ("phase 2", d)):
        bad = {k: phase[k] for k in BAD if phase[k]}
        checks.append(
            (
                f"{name}: every request answered correctly, told to retry or left on purpose",
                not bad,
                json.dumps(bad) if bad else "none wrong, errored, lost or hung",
            )
        )
    for name, phase in (("phase 1", c), ("phase 2", d)):
        checks.append(
            (f"{name}: no 5xx answer but busy refusals", phase["status_5xx"] == 0, json.dumps(phase["statuses"]))
        )
    served = [k for k, v in c["by_api"].items() if v.get("ok", 0) == 0]
    checks.append(
        (
            "phase 1: each API and mode answered at least once",
            not served,
            f"never answered: {served}" if served else "all four answered",
        )
    )
    for name, phase in (("phase 1", c), ("phase 2", d)):
        s = phase["settle"]
        checks.append(
            (
                f"{name}: idle pool, no CLI process the pool does not report",
                s["idle"] and not s["unreported_cli_pids"],
                f"unreported {s['unreported_cli_pids']}, settled in {s['settled_s']} s",
            )
        )
    ups = d["upstream"]
    checks.append(
        (
            f"phase 2: upstream stopped within {cfg.stop_bound:g} s of each client leaving",
            not ups["late"] and not ups["never_ended"],
            f"worst {ups['worst_stop_s']} s, late {len(ups['late'])}, never ended {len(ups['never_ended'])}",
        )
    )
    checks.append(
        (
            "no process left after shutdown",
            not results["after_stop_leftovers"],
            f"{len(results['after_stop_leftovers'])} left",
        )
    )
    checks.append(
        (
            f"pool counts at most MAX_PROCESSES = {MAX_PROCESSES} (running + starting)",
            mem_all.get("pool_processes", 0) <= MAX_PROCESSES,
            f"max {mem_all.get('pool_processes', 0):.0f}",
        )
    )
    checks.append(
        (
            f"live CLI processes at most MAX_PROCESSES+1 = {MAX_PROCESSES + 1}",
            mem_all.get("cli_processes", 0) <= MAX_PROCESSES + 1,
            f"max {mem_all.get('cli_processes', 0):.0f}",
        )
    )
    checks.append(
        (
            f"all CLI processes together under {cfg.cli_rss_bound_mib} MiB RSS",
            mem_all.get("cli_rss_mib", 0) <= cfg.cli_rss_bound_mib,
            f"max {mem_all.get('cli_rss_mib', 0):.0f} MiB",
        )
    )
    checks.append(
        (
            f"server under {cfg.server_rss_bound_mib} MiB RSS",
            mem_all.get("server_rss_mib", 0) <= cfg.server_rss_bound_mib,
            f"max {mem_all.get('server_rss_mib', 0):.0f} MiB",
        )
    )
    checks.append(
        (
            "no traceback in the server log",
            results["server_log"]["tracebacks"] == 0,
            f"{results['server_log']['tracebacks']} tracebacks",
        )
    )
    results["checks"] = [{"check": n, "passed": p, "detail": t} for n, p, t in checks]
    results["passed"] = all(p for _, p, _ in checks)

    RESULTS.write_text(json.dumps(results, indent=2, default=str) + "\n")
    results["table"] = table(results, cfg)
    say(results["table"])
    say(
        f"{'PASSED' if results['passed'] else 'FAILED'} in {results['seconds']} s; details in {RESULTS.relative_to(ROOT)}"
        + ("" if results["passed"] else f"; server log {server.log_path}")
    )
    return results


def table(results: dict[str, Any], cfg: Config) -> str:
    c, d = results["concurrent"], results["disconnect"]
    ups = d["upstream"]
    mem = results["memory"]
    lines = [
        (
            f"Load test ({results['mode']}, MAX_PROCESSES={MAX_PROCESSES}, CLI {results.get('cli_version')}, "
            f"{os.cpu_count()} cores, {results['seconds']:.0f} s in all):"
        ),
        "",
        "| Phase | Requests | Answered correctly | Told to retry | Left on purpose | Wrong | Errors | Lost | Hung | Time |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {cfg.concurrent} concurrent clients (OpenAI + Ollama, streaming and not) | {c['requests']} | {c['ok']} | "
            f"{c['retry']} | - | {c['wrong']} | {c['error']} | {c['lost']} | {c['hung']} | {c['seconds']:.0f} s |"
        ),
        (
            f"| {cfg.disconnect_requests} requests, {cfg.disconnect_concurrency} at a time, clients leaving at random | "
            f"{d['requests']} | {d['ok']} | {d['retry']} | {d['left']} | {d['wrong']} | {d['error']} | {d['lost']} | "
            f"{d['hung']} | {d['seconds']:.0f} s |"
        ),
        "",
        "| Check | Result |",
        "|---|---|",
    ]
    for phase_name, key in (("phase 1", "concurrent"), ("phase 2", "disconnect")):
        m = mem.get(key, {})
        lines.append(
            f"| Memory, {phase_name} (max) | {m.get('cli_processes', 0):.0f} live CLI processes "
            f"({m.get('pool_processes', 0):.0f} in the pool, {m.get('stopping_processes', 0):.0f} being stopped), "
            f"{m.get('cli_rss_mib', 0):.0f} MiB CLI RSS, server {m.get('server_rss_mib', 0):.0f} MiB |"
        )
    lines += [
        (
            f"| Upstream stopped after a client left | {ups['left'] - ups['left_before_upstream']} of {ups['left']} had "
            f"reached the upstream; worst {_s(ups['worst_stop_s'])}, median {_s(ups['median_stop_s'])} "
            f"(bound {cfg.stop_bound:g} s); turns begun after the client left: {ups['upstream_started_after_leaving']} |"
        ),
        (
            f"| Orphaned CLI processes | {len(c['settle']['unreported_cli_pids']) + len(d['settle']['unreported_cli_pids'])} "
            f"when idle, {len(results['after_stop_leftovers'])} after shutdown "
            f"({results['cli_processes_seen']} CLI processes seen) |"
        ),
    ]
    for check in results["checks"]:
        if not check["passed"]:
            lines.append(f"| FAILED: {check['check']} | {check['detail']} |")
    return "\n".join(lines)


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CI size: 20 concurrent clients, 40 disconnect requests")
    parser.add_argument("--seed", type=int, help="random seed for the request mix and disconnects")
    args = parser.parse_args()
    overrides = {"seed": args.seed} if args.seed is not None else {}
    cfg = Config.quick(**overrides) if args.quick else Config(**overrides)
    return 0 if run(quick=args.quick, cfg=cfg)["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
