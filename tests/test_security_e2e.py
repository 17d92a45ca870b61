"""Nobody reaches the host: keys on every API, CORS off by default, no built-in tools. Real CLI,
fake upstream. (No content in logs: test_caller_fields_e2e.py.)"""

from __future__ import annotations

import json
import os

import httpx
import ollama
import openai
import pytest
from fake_upstream import Reply, ToolUse

pytestmark = pytest.mark.e2e

KEY = "sk-bridge-test-1"


@pytest.fixture(scope="module")
def keyed(fake):
    from harness import BridgeServer

    server = BridgeServer(fake.base_url, BRIDGE_API_KEY=f"other-key, {KEY}", SPARE_PROFILES="0").start()
    yield server
    server.stop()


@pytest.mark.parametrize(
    "headers, status",
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": f"Bearer {KEY}"}, 200),
        ({"authorization": "Bearer other-key"}, 200),
        ({"x-api-key": KEY}, 200),
        ({"authorization": KEY}, 401),
    ],
)
def test_keys_are_enforced_on_the_openai_api(keyed, headers, status):
    response = httpx.get(f"{keyed.openai_url}/models", headers=headers, timeout=10)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("path", ["/api/tags", "/api/version", "/api/ps"])
def test_keys_are_enforced_on_the_ollama_api(keyed, path):
    response = httpx.get(f"{keyed.ollama_url}{path}", timeout=10)
    assert response.status_code == 401
    assert isinstance(response.json()["error"], str)
    assert (
        httpx.get(f"{keyed.ollama_url}{path}", headers={"authorization": f"Bearer {KEY}"}, timeout=10).status_code
        == 200
    )


def test_health_and_root_stay_open(keyed):
    health = httpx.get(f"{keyed.base_url}/health", timeout=10)
    assert health.status_code == 200 and health.json()["cli_version"]
    assert "pool" not in health.json() and "cli_path" not in health.json()  # details need the key
    assert "pool" in httpx.get(f"{keyed.base_url}/health", headers={"x-api-key": KEY}, timeout=10).json()
    assert httpx.get(f"{keyed.ollama_url}/", timeout=10).text == "Ollama is running"
    assert httpx.head(f"{keyed.ollama_url}/", timeout=10).status_code == 200


def test_both_sdks_work_with_the_key(keyed, fake):
    client = openai.OpenAI(base_url=keyed.openai_url, api_key=KEY, max_retries=0)
    assert client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}]).choices
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=keyed.openai_url, api_key="nope", max_retries=0).models.list()
    ollama_client = ollama.Client(host=keyed.ollama_url, headers={"Authorization": f"Bearer {KEY}"})
    assert ollama_client.list().models
    with pytest.raises(ollama.ResponseError) as caught:
        ollama.Client(host=keyed.ollama_url).list()
    assert caught.value.status_code == 401


def test_cors_is_off_by_default(bridge):
    response = httpx.options(
        f"{bridge.openai_url}/chat/completions",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        timeout=10,
    )
    assert "access-control-allow-origin" not in response.headers


def test_cors_allow_list_allows_authorization_and_stainless_headers(start_bridge):
    server = start_bridge(CORS_ORIGINS="https://app.example", BRIDGE_API_KEY=KEY, SPARE_PROFILES="0")
    preflight = httpx.options(
        f"{server.openai_url}/chat/completions",
        headers={
            "origin": "https://app.example",
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type, x-stainless-os, x-stainless-retry-count",
        },
        timeout=10,
    )
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    allowed = preflight.headers["access-control-allow-headers"].lower()
    assert "authorization" in allowed and "x-stainless-os" in allowed
    other = httpx.options(
        f"{server.openai_url}/chat/completions",
        headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        timeout=10,
    )
    assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_a_model_asking_for_bash_and_read_reaches_nothing_on_the_host(start_bridge, fake, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET-4711")
    marker = tmp_path / "pwned"
    server = start_bridge(SPARE_PROFILES="0")
    fake.enqueue(
        Reply(
            chunks=["Let me look."],
            tool_uses=[
                ToolUse("Bash", {"command": f"cat {secret} > {marker}; cat {secret}"}),
                ToolUse("Read", {"file_path": str(secret)}),
            ],
        ),
        Reply(chunks=["I could not run anything."]),
    )
    client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
    answer = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "read the file"}])
    text = answer.choices[0].message.content or ""
    assert "TOPSECRET" not in text
    assert not marker.exists(), "Bash ran on the host"
    assert answer.choices[0].message.tool_calls is None
    # The model was told the tools do not exist, and no host content went upstream either.
    assert len(fake.received) == 2
    assert fake.received[0].body.get("tools") in (None, [])
    follow_up = json.dumps(fake.received[1].messages)
    assert "TOPSECRET" not in follow_up
    results = [
        b
        for m in fake.received[1].messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    ]
    assert len(results) == 2 and all(r.get("is_error") for r in results)


def test_the_cli_runs_in_an_empty_private_directory_without_user_context(start_bridge, fake, tmp_path):
    server = start_bridge(SPARE_PROFILES="0")
    openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0).chat.completions.create(
        model="sonnet", messages=[{"role": "user", "content": "where am I?"}]
    )
    upstream = json.dumps(fake.received[-1].body)
    assert str(os.getcwd()) not in upstream  # not the server's own directory
    assert "CLAUDE.md" not in upstream
    if "Is a git repository" in upstream:  # the environment note (CLI versions that add one)
        assert "Is a git repository: false" in upstream
    assert fake.received[-1].body.get("tools") in (None, [])
    assert not fake.received[-1].body.get("mcp_servers")
