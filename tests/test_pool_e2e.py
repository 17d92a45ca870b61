"""Warm spares, admission, cancellation, crashes and shutdown, with the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time

import httpx
import openai
import psutil
import pytest
from fake_upstream import Reply
from harness import wait_for

pytestmark = pytest.mark.e2e


def chat(server, content="hi", **extra):
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    return client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": content}], **extra)


def test_a_second_request_with_the_same_profile_is_served_by_a_ready_spare(start_bridge, fake):
    server = start_bridge()
    system = [{"role": "system", "content": "You are a helpful assistant for Cline."}]
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    client.chat.completions.create(model="sonnet", messages=[*system, {"role": "user", "content": "task one"}])
    # A spare for this profile is ready after the first request: on workers the process that
    # served it is one again; without them a replacement starts in the background.
    assert wait_for(lambda: server.health()["pool"]["spares"] >= 1 and server.health()["pool"]["busy"] == 0, 20)
    pids_ready = server.cli_pids()
    before = server.health()["pool"]["counters"]
    client.chat.completions.create(model="sonnet", messages=[*system, {"role": "user", "content": "task two"}])
    after = server.health()["pool"]["counters"]
    assert after["spare"] == before["spare"] + 1 and after["cold"] == before["cold"]
    served_by = set(server.health()["pool"]["pids"])
    assert pids_ready & served_by, "the request was not served by a process that was already running"


def test_a_queue_overflow_is_refused_with_429_and_retry_after(start_bridge, fake):
    server = start_bridge(MAX_PROCESSES="1", QUEUE_SIZE="0", SPARE_PROFILES="0")
    fake.handler = lambda body: Reply(chunks=["slow"] * 20, delay=0.1)
    results = {}

    def long_request():
        results["long"] = chat(server, "long").choices[0].message.content

    thread = threading.Thread(target=long_request)
    thread.start()
    assert wait_for(lambda: len(fake.received) >= 1)
    response = httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": "second"}]},
        timeout=30,
    )
    assert response.status_code == 503  # a full bridge, not a refused account (429)
    assert response.headers["retry-after"].isdigit()
    assert response.json()["error"]["code"] == "pool_busy"
    ollama = httpx.post(
        f"{server.ollama_url}/api/chat",
        json={"model": "sonnet", "messages": [{"role": "user", "content": "third"}], "stream": False},
        timeout=30,
    )
    assert ollama.status_code == 503 and "busy" in ollama.json()["error"]
    thread.join(30)
    assert results["long"] == "slow" * 20


def test_a_dropped_streaming_client_drops_the_upstream_request(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0")
    fake.enqueue(Reply(chunks=["tick "] * 200, delay=0.05))
    with httpx.stream(
        "POST",
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "long"}]},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if "tick" in line:
                break
    left_at = time.monotonic()
    assert wait_for(lambda: fake.received[-1].ended_at is not None, timeout=5)
    call = fake.received[-1]
    assert call.disconnected and not call.finished
    assert call.ended_at - left_at < 3.0  # a hang guard; bench/load.py measures the delay
    # The interrupted process is not reused: it is stopped.
    assert wait_for(lambda: server.health()["pool"]["processes"] == 0, timeout=5)


def test_a_dropped_non_streaming_client_drops_the_upstream_request(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0")
    fake.enqueue(Reply(chunks=["tick "] * 200, delay=0.05))
    body = json.dumps({"model": "sonnet", "messages": [{"role": "user", "content": "long"}]}).encode()
    # A raw connection, closed once the upstream has the request (however long the cold
    # launch took): the client leaves while the answer is being made, not before.
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: bridge\r\nContent-Type: application/json\r\n"
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        fake.wait_for_calls(1, timeout=60)
    assert wait_for(lambda: fake.received[-1].ended_at is not None, timeout=5)
    assert fake.received[-1].disconnected


def test_a_cli_killed_mid_answer_gives_an_error_and_the_next_request_works(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0")
    fake.enqueue(Reply(chunks=["word "] * 100, delay=0.05))
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    stream = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "long"}], stream=True)
    with pytest.raises(openai.APIError):
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                for pid in server.cli_pids():
                    os.kill(pid, signal.SIGKILL)
    assert chat(server, "again").choices[0].message.content == "Hello from the fake."
    assert wait_for(lambda: len(server.cli_pids()) == len(server.health()["pool"]["pids"]), timeout=5)


def test_shutdown_leaves_no_cli_processes(start_bridge, fake):
    server = start_bridge(SHUTDOWN_GRACE_SECONDS="2")
    fake.enqueue(Reply(chunks=["x"] * 200, delay=0.05))
    thread = threading.Thread(target=lambda: _ignore_errors(lambda: chat(server, "in flight")))
    thread.start()
    assert wait_for(lambda: len(fake.received) >= 1)
    pids = server.cli_pids()
    assert pids
    # uvicorn re-raises the captured SIGTERM once its graceful shutdown is over.
    assert server.stop(signal.SIGTERM) in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in server.log()
    thread.join(30)
    assert not [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


def _ignore_errors(call):
    with contextlib.suppress(Exception):
        call()


def test_a_silent_cli_is_stopped_by_the_silence_timeout(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0", SILENCE_TIMEOUT_SECONDS="2")
    fake.enqueue(Reply(chunks=["start ", "never"], hang_after=1))
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    started = time.monotonic()
    stream = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hang"}], stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "silent" in str(caught.value)
    assert time.monotonic() - started < 15
    assert wait_for(lambda: fake.received[-1].disconnected, timeout=5), "the upstream request was not dropped"


def test_a_turn_longer_than_the_turn_timeout_is_stopped(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0", TURN_TIMEOUT_SECONDS="2")
    fake.enqueue(Reply(chunks=["tick "] * 100, delay=0.1))
    response = httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": "long"}]},
        timeout=30,
    )
    assert response.status_code == 504
    assert "longer than" in response.json()["error"]["message"]


def test_a_full_queue_answers_busy_at_once_while_a_process_is_stopping(start_bridge, fake):
    """The queue bound holds whatever else happens: with one process stopping (its client
    left mid-answer) and the one queue place taken, a newcomer is refused at once, not after
    the queue timeout."""
    server = start_bridge(MAX_PROCESSES="1", QUEUE_SIZE="1", SPARE_PROFILES="0", QUEUE_TIMEOUT_SECONDS="60")
    fake.enqueue(Reply(chunks=["tick "] * 200, delay=0.05))
    with httpx.stream(
        "POST",
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "stream": True, "messages": [{"role": "user", "content": "long"}]},
        timeout=30,
    ) as response:
        for line in response.iter_lines():
            if "tick" in line:
                break  # the client leaves: its process is interrupted and stopped
    results: dict[str, tuple[int, float]] = {}

    def ask(name: str) -> None:
        started = time.monotonic()
        answer = httpx.post(
            f"{server.openai_url}/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": name}]},
            timeout=90,
        )
        results[name] = (answer.status_code, time.monotonic() - started)

    threads = [threading.Thread(target=ask, args=(f"r{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
        time.sleep(0.02)
    for thread in threads:
        thread.join(120)
    refused = [elapsed for status, elapsed in results.values() if status == 503]
    assert refused, results
    assert max(refused) < 10, results  # a hang guard: refused at once, not after the 60 s wait
