"""What the newer surfaces cost next to chat completions: relay rate and warm follow-up TTFT.

For each surface (chat completions, Responses, Anthropic Messages, legacy completions) it
streams a 2000-chunk answer from the fake upstream (no delays) and times it from the first
text delta to the end at the client (the CLI and the bridge may join deltas that pile up, so
time, not frame count, is compared); then it times the first text delta of follow-ups that extend a held
conversation (Responses through previous_response_id). Ratios to chat within one run are the
figures to read: this machine is shared and absolute times move between runs.

    python bench/bench_surfaces.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import httpx
from fake_upstream import FakeAnthropic, Reply
from harness import BridgeServer

CHUNKS = 2000


def deltas_of(surface: str, event: str | None, data: str) -> int:
    """1 if this SSE frame carries answer text on ``surface``."""
    if data == "[DONE]":
        return 0
    body = json.loads(data)
    if surface in ("chat", "completions"):
        choices = body.get("choices") or []
        part = choices[0].get("delta", {}).get("content") if surface == "chat" and choices else None
        part = part if surface == "chat" else (choices[0].get("text") if choices else None)
        return 1 if part else 0
    if surface == "responses":
        return 1 if event == "response.output_text.delta" else 0
    return 1 if event == "content_block_delta" and body["delta"].get("type") == "text_delta" else 0


def request_for(surface: str, text: str, history: list, previous: str | None) -> tuple[str, dict]:
    if surface == "chat":
        return "/v1/chat/completions", {
            "model": "sonnet",
            "stream": True,
            "messages": [*history, {"role": "user", "content": text}],
        }
    if surface == "completions":
        return "/v1/completions", {"model": "sonnet", "stream": True, "prompt": text}
    if surface == "responses":
        body = {"model": "sonnet", "stream": True, "input": text}
        if previous:
            body["previous_response_id"] = previous
        return "/v1/responses", body
    return "/v1/messages", {
        "model": "sonnet",
        "max_tokens": 4096,
        "stream": True,
        "messages": [*history, {"role": "user", "content": text}],
    }


def stream(base: str, path: str, body: dict, surface: str) -> dict:
    started = time.monotonic()
    first = None
    count = 0
    event = None
    response_id = None
    text = []
    with httpx.stream("POST", base + path, json=body, timeout=120) as response:
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                n = deltas_of(surface, event, line[6:])
                if n and first is None:
                    first = time.monotonic() - started
                count += n
                if event == "response.completed":
                    response_id = json.loads(line[6:])["response"]["id"]
                if surface == "messages" and event == "content_block_delta":
                    text.append(json.loads(line[6:])["delta"].get("text", ""))
                if surface == "chat" and line[6:] != "[DONE]":
                    choices = json.loads(line[6:]).get("choices") or []
                    text.append((choices[0].get("delta", {}).get("content") or "") if choices else "")
    return {
        "total": time.monotonic() - started,
        "ttft": first,
        "deltas": count,
        "id": response_id,
        "text": "".join(text),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    fake = FakeAnthropic().start()
    server = BridgeServer(fake.base_url, LOG_LEVEL="warning").start()
    surfaces = ("chat", "responses", "messages", "completions")
    try:
        relay: dict[str, list[float]] = {s: [] for s in surfaces}
        for _ in range(args.runs):
            for surface in surfaces:
                fake.enqueue(Reply(chunks=["tok "] * CHUNKS))
                path, body = request_for(surface, "relay", [], None)
                result = stream(server.base_url, path, body, surface)
                relay[surface].append(result["total"] - (result["ttft"] or 0))
        # Conversations of every surface advance turn by turn together, so load drift on this
        # shared machine falls on all of them alike.
        ttft: dict[str, list[float]] = {s: [] for s in surfaces if s != "completions"}
        histories: dict[str, list] = {s: [] for s in ttft}
        previous: dict[str, str | None] = dict.fromkeys(ttft)
        for turn in range(args.runs + 1):
            for surface, times in ttft.items():
                time.sleep(0.5)  # the previous turn's CLI finishes its own work first (2 shared cores)
                fake.enqueue(Reply(chunks=["answer ", str(turn)]))
                path, body = request_for(surface, f"{surface} question {turn}", histories[surface], previous[surface])
                result = stream(server.base_url, path, body, surface)
                if turn:  # the first turn starts the conversation; the rest are held follow-ups
                    times.append(result["ttft"])
                histories[surface] += [
                    {"role": "user", "content": f"{surface} question {turn}"},
                    {"role": "assistant", "content": result["text"]},
                ]
                previous[surface] = result["id"]
        counters = server.health()["pool"]["counters"]
    finally:
        server.stop()
        fake.stop()
    chat_time = statistics.median(relay["chat"])
    print(f"relay, {CHUNKS} chunks, first delta to end (median of {args.runs}):")
    for surface, spans in relay.items():
        span = statistics.median(spans)
        print(
            f"  {surface:12} {span * 1000:6.0f} ms = {CHUNKS / span:6.0f} chunks/s = {span / chat_time:.2f}x chat's time"
        )
    chat_ttft = statistics.median(ttft["chat"])
    print(f"warm follow-up TTFT (median of {args.runs}):")
    for surface, times in ttft.items():
        print(
            f"  {surface:12} {statistics.median(times) * 1000:6.0f} ms = {statistics.median(times) / chat_ttft:.2f}x chat"
        )
    print("pool counters:", counters)


if __name__ == "__main__":
    main()
