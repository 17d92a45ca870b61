"""What survives what, with the real CLI: CLI processes killed from outside (the OOM killer, a
CLI upgrade, ``pkill claude``) while idle, during a turn, before and after its first byte; and a
CLI that starts failing while the server is serving (a stand-in wrapper breaks it on demand)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import stat
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest
from fake_upstream import Reply
from harness import find_test_cli, wait_for

pytestmark = pytest.mark.e2e


def client(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)


def ask(server, content="hi", **extra):
    return client(server).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": content}], **extra
    )


def kill_every_cli(server) -> set[int]:
    """SIGKILL every CLI process of the server (only the CLI, as the OOM killer would)."""
    pids = server.cli_pids()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return pids


def test_every_cli_killed_while_idle_then_five_requests_in_a_row_all_answer(start_bridge, fake):
    server = start_bridge()
    assert ask(server, "warm up").choices[0].message.content == "Hello from the fake."
    assert wait_for(lambda: server.health()["pool"]["spares"] >= 1, timeout=20)
    assert kill_every_cli(server)
    for n in range(5):
        answer = ask(server, f"question {n}")
        assert answer.choices[0].message.content == "Hello from the fake."
    health = server.health()
    assert health["status"] == "ok" and health["degraded"] == [] and not health["pool"]["backoff"]


def test_five_rounds_of_killing_everything_during_a_turn_then_asking_at_once_all_answer(start_bridge, fake):
    server = start_bridge()
    ask(server, "warm up")
    for round_ in range(5):
        fake.reset()
        fake.enqueue(Reply(first_delay=1.5))  # the turn in flight: slow to its first token
        results: dict[str, object] = {}

        def in_flight(store=results, n=round_):
            try:
                store["answer"] = ask(server, f"in flight {n}").choices[0].message.content
            except openai.APIError as exc:  # its own outcome is checked below
                store["answer"] = exc

        thread = threading.Thread(target=in_flight)
        thread.start()
        fake.wait_for_calls(1)
        assert kill_every_cli(server)
        answer = ask(server, f"right after {round_}")
        assert answer.choices[0].message.content == "Hello from the fake.", f"round {round_}"
        thread.join(30)
        # Killed before its first byte: retried on a new process, transparently.
        assert results["answer"] == "Hello from the fake.", f"round {round_}: {results['answer']!r}"
    assert not server.health()["pool"]["backoff"]


def test_a_kill_before_the_first_byte_is_retried_and_the_stream_gets_the_whole_answer(start_bridge, fake):
    server = start_bridge()
    fake.enqueue(Reply(chunks=["The", " whole", " answer."], first_delay=1.5))
    fake.default_reply = Reply(chunks=["The", " whole", " answer."])
    killed: set[int] = set()

    def killer():
        fake.wait_for_calls(1)
        killed.update(kill_every_cli(server))

    thread = threading.Thread(target=killer)
    thread.start()
    stream = client(server).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "slow start"}], stream=True
    )
    text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
    thread.join(10)
    fake.default_reply = Reply()
    assert killed and text == "The whole answer."
    assert len(fake.model_calls()) == 2  # the first try, cut by the kill, and the retry


def test_a_kill_after_the_first_byte_is_an_in_band_error_then_the_terminator(start_bridge, fake):
    server = start_bridge()
    fake.enqueue(Reply(chunks=["first"] + [" more"] * 40, delay=0.2))
    body = {"model": "sonnet", "messages": [{"role": "user", "content": "long"}], "stream": True}
    lines: list[str] = []
    with httpx.stream("POST", f"{server.openai_url}/chat/completions", json=body, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            lines.append(line[6:])
            if len(lines) == 2:  # the role chunk and the first text: bytes reached the client
                kill_every_cli(server)
    assert lines[-1] == "[DONE]"
    error = json.loads(lines[-2])
    assert error["error"]["code"] == "cli_crashed" and "mid-turn" in error["error"]["message"]
    assert len(fake.model_calls()) == 1  # no retry once the caller has part of the answer


def _breakable_cli(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A wrapper around the real CLI that works until ``flag`` exists and then exits at once
    with an error, as a broken auto-update would; every start is counted in ``starts``."""
    flag, starts, wrapper = tmp_path / "broken", tmp_path / "starts", tmp_path / "claude"
    wrapper.write_text(
        "#!/bin/sh\n"
        f'echo start >> "{starts}"\n'
        f'if [ -e "{flag}" ]; then echo "claude: error while loading shared libraries: libbroken.so.1" >&2; exit 127; fi\n'
        f'exec "{find_test_cli()}" "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return wrapper, flag, starts


def test_a_cli_that_breaks_while_serving_backs_off_answers_503_and_recovers(start_bridge, fake, tmp_path):
    wrapper, flag, starts = _breakable_cli(tmp_path)
    server = start_bridge(CLAUDE_CLI_PATH=str(wrapper), CLI_BACKOFF_MAX_SECONDS="4")
    assert ask(server, "before").choices[0].message.content == "Hello from the fake."
    flag.touch()
    kill_every_cli(server)  # the upgrade replaced the binary under the running processes
    assert wait_for(lambda: not server.cli_pids(), timeout=20)
    counted = len(starts.read_text().splitlines())
    refusals = []
    for n in range(16):  # about 8 s of a client asking twice a second
        response = httpx.post(
            f"{server.openai_url}/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": f"while broken {n}"}]},
            timeout=30,
        )
        refusals.append(response)
        time.sleep(0.5)
    assert all(r.status_code == 503 for r in refusals), [(r.status_code, r.text[:300]) for r in refusals]
    for response in refusals:
        assert response.headers["retry-after"].isdigit()
        error = response.json()["error"]
        assert error["code"] == "cli_unavailable" and "libbroken.so.1" in error["message"]
    attempts = len(starts.read_text().splitlines()) - counted
    assert 1 <= attempts <= 6, f"{attempts} starts while broken: a spawn loop"  # 16 requests, backoff 1-2-4-4 s
    health = server.health()
    assert health["status"] == "degraded" and any("libbroken.so.1" in why for why in health["degraded"])
    flag.unlink()  # the binary fixed: serving resumes without a restart

    def answers() -> bool:
        response = httpx.post(
            f"{server.openai_url}/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "after"}]},
            timeout=30,
        )
        return response.status_code == 200

    assert wait_for(answers, timeout=30, interval=0.5)
    assert wait_for(lambda: server.health()["status"] == "ok", timeout=10)
