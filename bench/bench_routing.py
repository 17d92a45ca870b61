"""What LiteLLM's proxy adds to a warm follow-up, side by side in one run.

Two bridges (real CLI, fake upstreams) behind LiteLLM's proxy with deploy/litellm.yaml. For
each round, two conversations of the same bridge: one through the proxy (pinned by
``x-litellm-session-id``), one straight to that bridge; each gets a streamed follow-up, and
the time to the first content chunk is taken at the client. Reported: p50/p95 of both paths,
the proxy's added TTFT (p50/p95 of the proxy path minus the direct one), and the share of
follow-ups through the proxy that the bridge served from the held process (x-bridge-process,
passed on as llm_provider-x-bridge-process).

    LITELLM_PROXY_PATH=.cache/litellm-proxy/bin/litellm python bench/bench_routing.py [--rounds 20]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _path in (str(ROOT), str(ROOT / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)

import openai
from fake_upstream import Reply
from routing_cluster import BRIDGE_KEY, MASTER_KEY, litellm_proxy_path, start_bridges, start_litellm, stop_bridges


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def follow_up(client: openai.OpenAI, messages: list[dict], headers: dict[str, str]) -> tuple[float, str, str]:
    """(TTFT in seconds, the bridge's process header, the deployment id) of a streamed turn."""
    started = time.perf_counter()
    first = None
    with client.chat.completions.with_streaming_response.create(
        model="sonnet", messages=messages, stream=True, extra_headers=headers
    ) as response:
        for chunk in response.parse():
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - started
        how = response.headers.get("llm_provider-x-bridge-process") or response.headers.get("x-bridge-process", "")
        deployment = response.headers.get("x-litellm-model-id", "")
    assert first is not None
    return first, how, deployment


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    binary = litellm_proxy_path()
    if binary is None:
        sys.exit("no LiteLLM proxy: set LITELLM_PROXY_PATH or run scripts/test (it installs .cache/litellm-proxy)")
    bridges = start_bridges(MAX_CONVERSATIONS="4", MAX_PROCESSES="6")
    for bridge in bridges:
        bridge.fake.default_reply = Reply(chunks=["Hello", " there."])
    router = start_litellm(binary, bridges)
    try:
        proxy = openai.OpenAI(base_url=router.url, api_key=MASTER_KEY, max_retries=0, timeout=120)
        by_id = {"bridge-a-sonnet": bridges[0], "bridge-b-sonnet": bridges[1]}
        through, direct, warm = [], [], 0
        for n in range(args.rounds):
            session = {"x-litellm-session-id": f"bench-{uuid.uuid4().hex[:8]}"}
            history = [{"role": "user", "content": f"proxy {n}"}]
            raw = proxy.chat.completions.with_raw_response.create(
                model="sonnet", messages=history, extra_headers=session
            )
            bridge = by_id[raw.headers["x-litellm-model-id"]]
            history += [
                {"role": "assistant", "content": raw.parse().choices[0].message.content},
                {"role": "user", "content": "more"},
            ]
            straight = openai.OpenAI(base_url=bridge.server.openai_url, api_key=BRIDGE_KEY, max_retries=0, timeout=120)
            mine = [{"role": "user", "content": f"direct {n}"}]
            answer = straight.chat.completions.create(model="sonnet", messages=mine).choices[0].message.content
            mine += [{"role": "assistant", "content": answer}, {"role": "user", "content": "more"}]
            # The two follow-ups, in alternating order so neither path always goes first.
            pair = [("proxy", proxy, history, session), ("direct", straight, mine, {})]
            for kind, client, messages, headers in pair if n % 2 == 0 else reversed(pair):
                ttft, how, deployment = follow_up(client, messages, headers)
                if kind == "proxy":
                    through.append(ttft)
                    warm += how == "held" and by_id.get(deployment) is bridge
                else:
                    direct.append(ttft)
        added = [p - d for p, d in zip(through, direct, strict=True)]
        ms = lambda s: f"{s * 1000:.0f} ms"  # noqa: E731
        print(f"follow-ups: {args.rounds} through LiteLLM, {args.rounds} direct, the same bridges, one run")
        print(f"TTFT direct   p50 {ms(statistics.median(direct))}  p95 {ms(percentile(direct, 0.95))}")
        print(f"TTFT LiteLLM  p50 {ms(statistics.median(through))}  p95 {ms(percentile(through, 0.95))}")
        print(f"added by LiteLLM (pairwise)  p50 {ms(statistics.median(added))}  p95 {ms(percentile(added, 0.95))}")
        print(f"served warm through LiteLLM: {warm} of {args.rounds} ({warm / args.rounds:.0%})")
    finally:
        router.stop()
        stop_bridges(bridges)


if __name__ == "__main__":
    main()
