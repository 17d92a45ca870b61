"""The upstream tap as a relay, with the fake upstream behind it (as the real API is in
production) and an HTTP client of its own in front (where the CLI is): requests arrive byte
for byte, streams chunk by chunk, errors unchanged, a dropped request is dropped upstream,
and response headers reach the callback; credentials pass and are never logged."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import httpx
import pytest
from fake_upstream import Reply, unified_headers

from claude_cli_bridge.tap import Tap, TapSettings

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


@pytest.fixture
async def tap(fake):
    seen: list[tuple[str, int, dict[str, str]]] = []
    relay = Tap(
        TapSettings(upstream=fake.base_url),
        {},
        lambda label, status, headers: seen.append((label, status, dict(headers))),
    )
    relay.seen_headers = seen  # type: ignore[attr-defined]
    await relay.start()
    yield relay
    await relay.close()


async def test_arbitrary_requests_reach_the_upstream_byte_for_byte(tap, fake):
    body = bytes(range(256)) * 3
    headers = [
        ("x-custom", "One"),
        ("x-custom", "two"),  # repeated headers stay repeated, in order
        ("x-api-key", "sk-ant-secret-key"),
        ("Authorization", "Bearer oauth-secret"),
        ("content-type", "application/octet-stream"),
    ]
    fake.other_replies["/v1/some/where"] = (207, {"x-answer": "yes"}, b"\x00answer\xff")
    async with httpx.AsyncClient() as client:
        response = await client.put(
            tap.base_url() + "/v1/some/where", params=[("q", "a b"), ("q", "ü")], headers=headers, content=body
        )
    assert (response.status_code, response.content, response.headers["x-answer"]) == (207, b"\x00answer\xff", "yes")
    [raw] = fake.raw
    assert (raw.method, raw.path, raw.query, raw.body) == ("PUT", "/v1/some/where", b"q=a+b&q=%C3%BC", body)
    sent = [(k.decode(), v.decode()) for k, v in raw.headers if k.decode() not in ("host", "content-length")]
    for name, value in headers:
        assert (name.lower(), value) in sent
    assert sent.count(("x-custom", "One")) == 1 and sent.index(("x-custom", "One")) < sent.index(("x-custom", "two"))


async def test_a_messages_body_without_an_environment_note_is_forwarded_unchanged(tap, fake):
    body = b'{"model":"m","messages":[{"role":"user","content":"caf\\u00e9  \\n # Environment\\n"}],"stream":false}'
    async with httpx.AsyncClient() as client:
        response = await client.post(tap.base_url() + "/v1/messages", content=body)
    assert response.status_code == 200
    assert fake.raw[0].body == body


async def test_a_lone_surrogate_survives_the_notes_removal(tap, fake):
    note = "# Environment\\nYou have been invoked in the following environment: \\n - Platform: linux"
    body = (
        '{"model":"m","messages":[{"role":"system","content":"' + note + '"},'
        '{"role":"user","content":"half \\ud83d an emoji, a whole \\ud83d\\ude00"}],"stream":false}'
    ).encode()
    async with httpx.AsyncClient() as client:
        response = await client.post(tap.base_url() + "/v1/messages", content=body)
    assert response.status_code == 200
    forwarded = fake.raw[0].body
    assert b"Environment" not in forwarded
    assert (
        forwarded
        == '{"model":"m","messages":[{"role":"user","content":"half \\ud83d an emoji, a whole \U0001f600"}],"stream":false}'.encode()
    )


async def test_a_slow_stream_arrives_chunk_by_chunk(tap, fake):
    fake.enqueue(Reply(chunks=["one", "two", "three", "four"], delay=0.3))
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    texts: list[str] = []
    unfinished_when_seen: list[bool] = []
    async with httpx.AsyncClient() as client, client.stream("POST", tap.base_url() + "/v1/messages", json=body) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: ") and '"text_delta"' in line:
                texts.append(json.loads(line[6:])["delta"]["text"])
                # Each delta is here while the upstream is still writing the next ones.
                unfinished_when_seen.append(not fake.received[-1].finished)
    assert texts == ["one", "two", "three", "four"]
    assert unfinished_when_seen[:3] == [True, True, True]  # (after the last one, the stream ends at once)


@pytest.mark.parametrize(
    ("status", "kind", "extra"),
    [
        (400, "invalid_request_error", {}),
        (401, "authentication_error", {}),
        (429, "rate_limit_error", {"retry-after": "17", **unified_headers("rejected", five_hour=(1.0, 1999999999))}),
        (529, "overloaded_error", {}),
    ],
)
async def test_upstream_errors_reach_the_client_unchanged(tap, fake, status, kind, extra):
    fake.enqueue(Reply(status=status, error_type=kind, error_message=f"scripted {status}", headers=extra))
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        response = await client.post(tap.base_url() + "/v1/messages", json=body)
    assert response.status_code == status
    assert response.json() == {"type": "error", "error": {"type": kind, "message": f"scripted {status}"}}
    for name, value in extra.items():
        assert response.headers[name] == value
    label, seen_status, seen = tap.seen_headers[-1]
    assert (label, seen_status) == ("default", status)
    if status == 429:
        assert seen["anthropic-ratelimit-unified-status"] == "rejected"


async def test_a_dropped_request_is_dropped_upstream_at_once(tap, fake):
    fake.enqueue(Reply(chunks=["first", "never"], hang_after=1))
    body = {"model": "m", "max_tokens": 10, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client, client.stream("POST", tap.base_url() + "/v1/messages", json=body) as r:
        async for line in r.aiter_lines():
            if '"first"' in line:
                break  # the client leaves mid-stream
    dropped_at = time.monotonic()
    record = fake.received[-1]
    while not record.disconnected and time.monotonic() - dropped_at < 0.5:  # noqa: ASYNC110 - another thread's flag
        await asyncio.sleep(0.01)
    assert record.disconnected and not record.finished
    assert tap.counters.dropped == 1


async def test_paths_outside_the_runs_prefix_are_refused(tap, fake):
    async with httpx.AsyncClient() as client:
        for path in ("/v1/messages", "/" + "0" * 32 + "/default/v1/messages", f"/{tap.prefix}", f"/{tap.prefix}/a b/x"):
            response = await client.post(f"http://127.0.0.1:{tap.port}{path}", content=b"{}")
            assert response.status_code == 404, path
    assert fake.raw == []


async def test_each_account_label_reaches_the_callback(tap, fake):
    fake.enqueue(Reply(headers=unified_headers(five_hour=(0.25, 1999999999))))
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        assert (await client.post(tap.base_url("work") + "/v1/messages", json=body)).status_code == 200
    label, status, headers = tap.seen_headers[-1]
    assert (label, status, headers["anthropic-ratelimit-unified-5h-utilization"]) == ("work", 200, "0.25")


async def test_an_unreachable_upstream_is_a_502_in_the_upstreams_shape(fake, caplog):
    relay = Tap(TapSettings(upstream="http://127.0.0.1:9"), {})
    await relay.start()
    try:
        async with httpx.AsyncClient() as client:
            response = await client.post(relay.base_url() + "/v1/messages", json={}, headers={"x-api-key": "sk-x"})
    finally:
        await relay.close()
    assert response.status_code == 502
    assert response.json()["type"] == "error"


async def test_the_taps_own_server_logs_no_lifecycle_lines(caplog):
    """uvicorn's "Started server process" and the rest would read as a second bridge."""
    caplog.set_level(logging.INFO)
    relay = Tap(TapSettings(upstream="http://127.0.0.1:9"), {})
    await relay.start()
    await relay.close()
    assert [r.getMessage() for r in caplog.records if r.name == "uvicorn.error"] == []


async def test_credentials_pass_through_and_never_reach_a_log_line(tap, fake, caplog):
    caplog.set_level(logging.DEBUG)
    body = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
    async with httpx.AsyncClient() as client:
        await client.post(
            tap.base_url() + "/v1/messages",
            json=body,
            headers={"x-api-key": "sk-ant-PLANTED-1", "authorization": "Bearer PLANTED-2"},
        )
    assert fake.received[-1].headers["x-api-key"] == "sk-ant-PLANTED-1"
    assert fake.received[-1].headers["authorization"] == "Bearer PLANTED-2"
    assert "PLANTED" not in caplog.text
    assert all("PLANTED" not in json.dumps(entry) for entry in tap.seen)
