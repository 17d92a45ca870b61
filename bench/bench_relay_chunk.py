"""The bridge's own per-chunk cost on each turn surface, with no CLI in the way.

A scripted engine (tests/scripted_engine.py) answers with CHUNKS text deltas at once; each
surface's streaming route relays them over ``httpx.ASGITransport`` in this process, so the
time per chunk is the route's relay (pipeline, writer, frame encoding, the HTTP response)
and nothing else. It reports this process's CPU time per chunk (client and server share the
process), which other load on a shared machine moves far less than wall time. Run it on two
checkouts, alternately, and compare the figures side by side.

    python bench/bench_relay_chunk.py [--chunks 3000] [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

from scripted_engine import ScriptedEngine, client_for, text_turn

SURFACES = {
    "chat": (
        "/v1/chat/completions",
        {"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "completions": ("/v1/completions", {"model": "sonnet", "stream": True, "prompt": "hi"}),
    "responses": ("/v1/responses", {"model": "sonnet", "stream": True, "input": "hi", "store": False}),
    "messages": (
        "/v1/messages",
        {"model": "sonnet", "stream": True, "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "ollama": ("/api/chat", {"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]}),
}


async def one(client, path: str, body: dict) -> float:
    started = time.process_time()
    async with client.stream("POST", path, json=body) as response:
        assert response.status_code == 200, response.status_code
        async for _ in response.aiter_bytes():
            pass
    return time.process_time() - started


async def main(chunks: int, runs: int) -> None:
    engine = ScriptedEngine(script=lambda request: text_turn(*(["x"] * chunks)))
    async with client_for(engine) as client:
        for name, (path, body) in SURFACES.items():
            await one(client, path, body)  # warm
            times = [await one(client, path, body) for _ in range(runs)]
            print(f"{name:12s} {min(times) / chunks * 1e6:7.1f} us CPU/chunk (best of {runs})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.chunks, args.runs))
