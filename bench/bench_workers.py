"""Warm anywhere (issue 26): how clients really talk, on workers against transcripts, one run.

Each pattern runs on a server with the tap (workers: any warm process serves any turn) and one
with UPSTREAM_TAP=off (held processes and transcript rebuilds, the path before workers), in
front of the same fake upstream (a child process), with the real CLI. Per pattern: the share
of turns served by an already-running process (``X-Bridge-Process`` not ``cold``) and the
median time to first token against the same server's plain follow-up.

Patterns: an agent loop with tools on OpenAI chat and on Anthropic Messages (7 steps each);
12 and 50 conversations interleaved (2 rounds); an earlier message edited (5 times); a
conversation continued after a restart of the bridge; turns alternating between two
bridges; then memory: the pool's RSS before and after 50 interleaved conversations, and a
worker after 200 turns against a fresh one (RSS, CPU per turn).

    python bench/bench_workers.py          # about 6 minutes on 2 cores
    python bench/bench_workers.py fake     # (internal) the fake upstream; prints its URL
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import httpx
import psutil
from common import median
from harness import BridgeServer, find_test_cli
from test_tap_cli_e2e import WEATHER

ANTHROPIC_WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER["function"]["parameters"],
}


# -- the fake upstream ------------------------------------------------------------------------
def _fake_main() -> None:
    from fake_upstream import FakeAnthropic, Reply, ToolUse, tool_results

    fake = FakeAnthropic()

    def handler(body: dict[str, Any]) -> Reply:
        offered = {t.get("name", "").removeprefix("mcp__client__") for t in body.get("tools") or []}
        if "get_weather" in offered:
            calls = len(tool_results(body))
            if calls < 6:  # an agent loop: a call each step, then an answer
                return Reply(chunks=["Checking. "], tool_uses=[ToolUse("get_weather", {"city": f"c{calls}"})])
        return Reply(chunks=["Fine, ", "thanks."])

    fake.handler = handler
    fake.start()
    print(fake.base_url, flush=True)
    try:
        sys.stdin.read()
    finally:
        fake.stop()


class Fake:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "fake"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.url = self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def stop(self) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(5)


# -- clients -----------------------------------------------------------------------------------
def chat(client: httpx.Client, server: BridgeServer, messages: list[dict], tools: list | None = None) -> dict:
    """One streamed chat completion: ttft, how, the assistant message to send back."""
    body: dict[str, Any] = {"model": "sonnet", "stream": True, "messages": messages}
    if tools:
        body["tools"] = tools
    started = time.perf_counter()
    ttft, text, calls = None, "", {}
    with client.stream("POST", f"{server.openai_url}/chat/completions", json=body) as response:
        response.raise_for_status()
        how = response.headers.get("x-bridge-process", "")
        for line in response.iter_lines():
            if not line.startswith("data:") or line[5:].strip() == "[DONE]":
                continue
            for choice in json.loads(line[5:]).get("choices") or []:
                delta = choice.get("delta") or {}
                if (delta.get("content") or delta.get("tool_calls")) and ttft is None:
                    ttft = time.perf_counter() - started
                text += delta.get("content") or ""
                for call in delta.get("tool_calls") or []:
                    entry = calls.setdefault(call["index"], {"id": "", "name": "", "arguments": ""})
                    entry["id"] = call.get("id") or entry["id"]
                    function = call.get("function") or {}
                    entry["name"] += function.get("name") or ""
                    entry["arguments"] += function.get("arguments") or ""
    message: dict[str, Any] = {"role": "assistant", "content": text}
    if calls:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in calls.values()
        ]
    return {"ttft": ttft, "how": how, "message": message}


def messages_api(client: httpx.Client, server: BridgeServer, messages: list[dict]) -> dict:
    """One streamed Anthropic Messages turn with the weather tool."""
    body = {"model": "sonnet", "max_tokens": 1000, "stream": True, "messages": messages, "tools": [ANTHROPIC_WEATHER]}
    started = time.perf_counter()
    ttft, blocks = None, []
    with client.stream("POST", f"{server.base_url}/v1/messages", json=body) as response:
        response.raise_for_status()
        how = response.headers.get("x-bridge-process", "")
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event["type"] == "content_block_start":
                blocks.append(dict(event["content_block"]) | {"_json": ""})
            elif event["type"] == "content_block_delta":
                if ttft is None:
                    ttft = time.perf_counter() - started
                delta = event["delta"]
                if delta["type"] == "text_delta":
                    blocks[-1]["text"] += delta["text"]
                elif delta["type"] == "input_json_delta":
                    blocks[-1]["_json"] += delta["partial_json"]
    content = []
    for block in blocks:
        raw = block.pop("_json")
        if block["type"] == "tool_use":
            block["input"] = json.loads(raw or "{}")
        if block["type"] in ("text", "tool_use"):
            content.append(block)
    return {"ttft": ttft, "how": how, "content": content}


# -- patterns ----------------------------------------------------------------------------------
def follow_ups(client: httpx.Client, server: BridgeServer, n: int = 10) -> list[dict]:
    out = []
    for i in range(n):
        history = [{"role": "user", "content": f"plain {i} {time.time()}"}]
        first = chat(client, server, history)
        history += [first["message"], {"role": "user", "content": "and?"}]
        out.append(chat(client, server, history))
    return out


def openai_agent_loop(client: httpx.Client, server: BridgeServer) -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": f"Weather tour {time.time()}"}]
    out = []
    for _ in range(7):
        turn = chat(client, server, messages, [WEATHER])
        out.append(turn)
        messages.append(turn["message"])
        for call in turn["message"].get("tool_calls") or []:
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": "-3 C"})
        if not turn["message"].get("tool_calls"):
            break
    return out


def anthropic_agent_loop(client: httpx.Client, server: BridgeServer) -> list[dict]:
    messages: list[dict] = [{"role": "user", "content": f"Weather tour {time.time()}"}]
    out = []
    for _ in range(7):
        turn = messages_api(client, server, messages)
        out.append(turn)
        messages.append({"role": "assistant", "content": turn["content"]})
        calls = [b for b in turn["content"] if b["type"] == "tool_use"]
        if not calls:
            break
        messages.append(
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": c["id"], "content": "-3 C"} for c in calls],
            }
        )
    return out


def interleaved(client: httpx.Client, server: BridgeServer, count: int) -> list[dict]:
    stamp = time.time()
    chats = [[{"role": "user", "content": f"conversation {n} {stamp}"}] for n in range(count)]
    out = []
    for round_ in range(2):
        for history in chats:
            turn = chat(client, server, history)
            if round_:
                out.append(turn)  # the first round starts conversations; the second continues them
            history += [turn["message"], {"role": "user", "content": "and then?"}]
    return out


def edited(client: httpx.Client, server: BridgeServer) -> list[dict]:
    history = [{"role": "user", "content": f"draft {time.time()}"}]
    turn = chat(client, server, history)
    history += [turn["message"], {"role": "user", "content": "more"}]
    out = []
    for n in range(5):
        history[0] = {"role": "user", "content": f"draft, edited {n} {time.time()}"}
        out.append(chat(client, server, history))
    return out


def after_restart(client: httpx.Client, upstream: str, env: dict[str, str]) -> list[dict]:
    server = BridgeServer(upstream, **env).start()
    history = [{"role": "user", "content": f"before a restart {time.time()}"}]
    turn = chat(client, server, history)
    history += [turn["message"], {"role": "user", "content": "after it"}]
    server.stop()
    server.remove()
    server = BridgeServer(upstream, **env).start()
    try:
        server.wait_idle(30)
        return [chat(client, server, history) for _ in range(3)]
    finally:
        server.stop()
        server.remove()


def two_bridges(client: httpx.Client, upstream: str, env: dict[str, str]) -> list[dict]:
    servers = [BridgeServer(upstream, **env).start(), BridgeServer(upstream, **env).start()]
    try:
        for server in servers:
            server.wait_idle(30)
        history = [{"role": "user", "content": f"routed {time.time()}"}]
        out = []
        for n in range(7):
            turn = chat(client, servers[n % 2], history)
            if n:
                out.append(turn)
            history += [turn["message"], {"role": "user", "content": f"next {n}"}]
        return out
    finally:
        for server in servers:
            server.stop()
            server.remove()


# -- memory ----------------------------------------------------------------------------------
def pool_rss(server: BridgeServer) -> float:
    total = 0
    for pid in server.cli_pids():
        try:
            root = psutil.Process(pid)
            total += sum(p.memory_info().rss for p in [root, *root.children(recursive=True)])
        except psutil.Error:
            pass
    return total / 2**20


def worker_after_turns(client: httpx.Client, upstream: str, turns: int) -> dict[str, float]:
    """One worker (MAX_PROCESSES=1): RSS and CPU per turn over its first 10 turns and over
    turns ``turns-10``..``turns``."""
    server = BridgeServer(upstream, MAX_PROCESSES="1", WORKER_MAX_TURNS=str(turns + 10)).start()
    try:
        server.wait_idle(30)

        def window(n: int) -> tuple[float, float]:
            [pid] = server.cli_pids()
            process = psutil.Process(pid)
            cpu = sum(process.cpu_times()[:2])
            for i in range(n):
                chat(client, server, [{"role": "user", "content": f"turn {i} {time.time()} " + "x" * 2000}])
            return process.memory_info().rss / 2**20, (sum(process.cpu_times()[:2]) - cpu) / n * 1000

        fresh_rss, fresh_cpu = window(10)
        for i in range(turns - 20):
            chat(client, server, [{"role": "user", "content": f"filler {i} " + "x" * 2000}])
        old_rss, old_cpu = window(10)
        return {"fresh_rss_mb": fresh_rss, "fresh_cpu_ms": fresh_cpu, "old_rss_mb": old_rss, "old_cpu_ms": old_cpu}
    finally:
        server.stop()
        server.remove()


# -- the run ------------------------------------------------------------------------------------
def summary(turns: list[dict], baseline: float) -> str:
    warm = sum(1 for t in turns if not t["how"].startswith("cold"))
    ttft = median(t["ttft"] for t in turns if t["ttft"] is not None)
    ratio = ttft / baseline if ttft and baseline else float("nan")
    return f"{warm:>3}/{len(turns):<3} warm  median TTFT {ttft * 1000:7.1f} ms = {ratio:5.2f}x"


def main() -> None:
    os.environ.setdefault("CLAUDE_CLI_PATH", find_test_cli())
    fake = Fake()
    client = httpx.Client(timeout=120)
    paths = {"workers": {}, "transcripts": {"UPSTREAM_TAP": "off"}}
    rows: dict[str, dict[str, str]] = {}
    try:
        for name, env in paths.items():
            server = BridgeServer(fake.url, **env).start()
            try:
                server.wait_idle(30)
                follow_ups(client, server, 2)  # warm the spares up
                base = median(t["ttft"] for t in follow_ups(client, server))
                assert base is not None
                rows.setdefault("plain follow-up (the baseline)", {})[name] = f"median TTFT {base * 1000:7.1f} ms"
                patterns = {
                    "agent loop, OpenAI chat, 7 steps": lambda s: openai_agent_loop(client, s),
                    "agent loop, Anthropic Messages, 7 steps": lambda s: anthropic_agent_loop(client, s),
                    "12 conversations interleaved": lambda s: interleaved(client, s, 12),
                    "an earlier message edited": lambda s: edited(client, s),
                }
                for label, run in patterns.items():
                    rows.setdefault(label, {})[name] = summary(run(server), base)
                before = pool_rss(server)
                turns = interleaved(client, server, 50)
                rows.setdefault("50 conversations interleaved", {})[name] = summary(turns, base)
                rows.setdefault("pool RSS before / after 50 conversations", {})[name] = (
                    f"{before:.0f} / {pool_rss(server):.0f} MB, {len(server.cli_pids())} processes"
                )
            finally:
                server.stop()
                server.remove()
            rows.setdefault("continued after a restart of the bridge", {})[name] = summary(
                after_restart(client, fake.url, env), base
            )
            rows.setdefault("turns alternating between two bridges", {})[name] = summary(
                two_bridges(client, fake.url, env), base
            )
        worker = worker_after_turns(client, fake.url, 200)
    finally:
        client.close()
        fake.stop()
    print(f"\n{'pattern':45} | {'workers (tap)':45} | transcripts (UPSTREAM_TAP=off)")
    for label, by_path in rows.items():
        print(f"{label:45} | {by_path.get('workers', ''):45} | {by_path.get('transcripts', '')}")
    print(
        f"\na worker after 200 turns: RSS {worker['old_rss_mb']:.0f} MB, CPU {worker['old_cpu_ms']:.1f} ms/turn; "
        f"fresh: {worker['fresh_rss_mb']:.0f} MB, {worker['fresh_cpu_ms']:.1f} ms/turn "
        f"(ratios {worker['old_rss_mb'] / worker['fresh_rss_mb']:.2f}x, {worker['old_cpu_ms'] / worker['fresh_cpu_ms']:.2f}x)"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["fake"]:
        _fake_main()
    else:
        main()
