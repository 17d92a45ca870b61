"""Watching a real server (real CLI, fake upstream, the clients' SDKs): the request log and the
usage ledger hold the tokens the clients received, /metrics counts the requests behind the key,
and the dashboard in headless Chromium shows the numbers /health reports."""

from __future__ import annotations

import json
import re
import time

import httpx
import ollama
import openai
import pytest
from browser import dump_dom, parse, screenshot
from fake_upstream import Reply, unified_headers
from prometheus_client.parser import text_string_to_metric_families

from claude_cli_bridge.observe.ledger import read_usage

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]
KEY = "dashboard-test-key-0123456789"
TOKENS = re.compile(r"tokens in=(\d+) out=(\d+) cache-read=(\d+) cache-write=(\d+) status=(\d+)")


def request_lines(server) -> list[str]:
    return [line for line in server.log_path.read_text().splitlines() if "claude_cli_bridge.requests" in line]


def test_log_lines_and_ledger_hold_the_tokens_the_clients_received(start_bridge, fake):
    server = start_bridge()
    fake.enqueue(
        Reply(chunks=["one"], input_tokens=23, output_tokens=7, cache_read_input_tokens=5),
        Reply(chunks=["t", "w", "o"], input_tokens=31, output_tokens=4, cache_creation_input_tokens=2),
        Reply(chunks=["three"], input_tokens=13, output_tokens=2),
    )
    client = openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0)
    plain = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "a"}]).usage
    chunks = list(
        client.chat.completions.create(
            model="sonnet",
            messages=[{"role": "user", "content": "b"}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    streamed = chunks[-1].usage
    answer = ollama.Client(host=server.ollama_url).chat(
        model="haiku", messages=[{"role": "user", "content": "c"}], stream=False
    )
    received = [
        (plain.prompt_tokens, plain.completion_tokens),
        (streamed.prompt_tokens, streamed.completion_tokens),
        (answer.prompt_eval_count, answer.eval_count),
    ]
    assert received == [(28, 7), (33, 4), (13, 2)]

    deadline = time.monotonic() + 10  # the line is written after the response's last byte
    while len([line for line in request_lines(server) if "tokens in=" in line]) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    logged = []
    for line in request_lines(server):
        match = TOKENS.search(line)
        if match:
            n_in, n_out, read, write, status = map(int, match.groups())
            logged.append((n_in + read + write, n_out))
            assert status == 200
    assert logged == received
    lines = [line for line in request_lines(server) if "tokens in=" in line]
    assert "openai POST /v1/chat/completions model=sonnet stream=no process=" in lines[0]
    assert "stream=yes" in lines[1] and "ollama POST /api/chat model=haiku stream=no" in lines[2]
    assert all("first=" in line and "total=" in line for line in lines)
    assert not any(word in line for line in lines for word in ("'a'", "'b'", "'c'"))  # no prompt text

    rows = read_usage(server.data_dir, 1)
    assert [
        (r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"], r["output_tokens"]) for r in rows
    ] == received
    assert [(r["api"], r["model"], r["stream"]) for r in rows] == [
        ("openai", "sonnet", False),
        ("openai", "sonnet", True),
        ("ollama", "haiku", False),
    ]


def test_json_log_format_and_metrics_behind_the_key(start_bridge, fake):
    server = start_bridge(LOG_FORMAT="json", BRIDGE_API_KEY=KEY)
    headers = {"authorization": f"Bearer {KEY}"}
    assert httpx.get(f"{server.base_url}/metrics", timeout=10).status_code == 401
    for _ in range(2):
        response = httpx.post(
            f"{server.openai_url}/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
            headers=headers,
            timeout=60,
        )
        assert response.status_code == 200
    metrics = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10)
    assert metrics.status_code == 200
    families = {family.name: family for family in text_string_to_metric_families(metrics.text)}
    counted = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["bridge_requests"].samples
        if s.name.endswith("_total")
    }
    assert counted[("/v1/chat/completions", "200")] == 2
    assert ("/metrics", "401") not in counted  # /metrics is not an API request: not counted
    assert {s.labels["state"] for s in families["bridge_pool_processes"].samples} == {
        "spare",
        "held",
        "busy",
        "starting",
        "stopping",
    }
    output = sum(
        s.value for s in families["bridge_tokens"].samples if s.labels["kind"] == "output" and s.name.endswith("_total")
    )
    assert output == 2 * 4  # the fake's default reply: four chunks, four output tokens

    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]  # every line is JSON, uvicorn's and the banner's too
    requests = [entry for entry in parsed if entry.get("event") == "request"]
    assert [(r["path"], r["status"], r["output_tokens"]) for r in requests] == [("/v1/chat/completions", 200, 4)] * 2
    assert all(r["key_label"] == "shared" and KEY not in json.dumps(r) for r in requests)


def test_the_dashboard_in_headless_chromium_shows_what_health_reports(start_bridge, fake, tmp_path):
    server = start_bridge(CLAUDE_CODE_OAUTH_TOKEN="test-oauth-token", ANTHROPIC_API_KEY=None, BRIDGE_API_KEY=KEY)
    now = int(time.time())
    fake.default_reply = Reply(
        input_tokens=19,
        headers=unified_headers(five_hour=(0.42, now + 3600), seven_day=(0.17, now + 3 * 86400), claim="five_hour"),
    )
    headers = {"authorization": f"Bearer {KEY}"}
    try:
        for model in ("sonnet", "haiku", "sonnet"):
            response = httpx.post(
                f"{server.openai_url}/chat/completions",
                json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
                headers=headers,
                timeout=60,
            )
            assert response.status_code == 200, response.text
    finally:
        fake.default_reply = Reply()
    metrics = httpx.get(f"{server.base_url}/metrics", headers=headers, timeout=10).text
    utilization = {
        s.labels["window"]: s.value
        for family in text_string_to_metric_families(metrics)
        if family.name == "bridge_subscription_window_utilization"
        for s in family.samples
    }
    assert utilization == {"five_hour": 0.42, "seven_day": 0.17}

    url = f"http://viewer:{KEY}@127.0.0.1:{server.port}/dashboard"
    for _attempt in range(3):  # the pool may still be settling (a spare being replaced)
        before = _idle_health(server, headers)
        page = parse(dump_dom(url))
        after = _idle_health(server, headers)
        if before["pool"] == after["pool"]:
            break
    screenshot(url, tmp_path / "dashboard.png")
    assert page.attrs_by_id.get("status") is not None
    texts = page.by_id
    assert texts["cli-version"] == after["cli_version"]
    assert texts["status"] == after["status"]
    pool = after["pool"]
    for state in ("spare", "held", "busy", "starting", "waiting"):
        assert texts[f"pool-{state}"] == str(pool[state]), state
    assert len(page.rows["processes"]) - 1 == pool["processes"]  # minus the header row
    windows = after["subscription"]["windows"]
    assert texts["window-five_hour-percent"] == f"{windows['five_hour']['percent']:g}%" == "42%"
    assert texts["window-seven_day-percent"] == f"{windows['seven_day']['percent']:g}%" == "17%"
    assert windows["five_hour"]["resets_at_iso"] in texts["window-five_hour-reset"]
    recent = page.rows["recent"][1:]
    assert len(recent) == 3 and [row[3] for row in recent] == ["sonnet", "haiku", "sonnet"]
    usage = {row[1]: row for row in page.rows["usage"][1:]}
    assert (usage["sonnet"][2], usage["haiku"][2]) == ("2", "1")  # requests per model today
    assert usage["sonnet"][4] == "38"  # input tokens: 2 x 19, as the ledger and the clients got them
    ledger = read_usage(server.data_dir, 1)
    assert sum(r["input_tokens"] for r in ledger if r["model"] == "sonnet") == 38


def _idle_health(server, headers) -> dict:
    deadline = time.monotonic() + 20
    while True:
        health = httpx.get(f"{server.base_url}/health", headers=headers, timeout=10).json()
        if (health["pool"]["busy"] == 0 and health["pool"]["starting"] == 0) or time.monotonic() > deadline:
            return health
        time.sleep(0.1)


def test_the_dashboard_counts_turns_per_process_and_keeps_unknown_models_out_of_usage(start_bridge, fake):
    server = start_bridge()
    url = f"http://127.0.0.1:{server.port}/dashboard"
    empty = parse(dump_dom(url)).by_id  # nothing asked yet: the tables say so
    assert empty["recent-empty"] == "No requests yet."
    assert empty["usage-empty"].startswith("No usage recorded") and empty["errors-empty"].startswith("No failed")

    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    history = [{"role": "user", "content": "first"}]
    first = client.chat.completions.create(model="sonnet", messages=history).choices[0].message.content
    history += [{"role": "assistant", "content": first}, {"role": "user", "content": "second"}]
    client.chat.completions.create(model="sonnet", messages=history)  # the same worker's second turn
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    health = _idle_health(server, {})
    held = [p for p in health["pool"]["process_list"] if p["turns"] == 2]  # (a worker: state spare)
    assert held, health["pool"]["process_list"]

    page = parse(dump_dom(url))
    processes = {row[0]: row for row in page.rows["processes"][1:]}
    assert processes[str(held[0]["pid"])][3] == "2"  # pid, state, model, turns
    usage = page.rows["usage"][1:]
    assert [row[1] for row in usage] == ["sonnet"] and usage[0][2] == "2"  # no row for gpt-4o
    assert "gpt-4o" not in page.by_id["chart"]
    errors = page.rows["errors"][1:]
    assert [(row[2], row[3], row[4]) for row in errors] == [("/v1/chat/completions", "1", "404 × 1")]
