"""Start-up: finding the CLI, clear errors, the transcript probe and `doctor`."""

from __future__ import annotations

import time

import pytest
from harness import BridgeServer, find_test_cli, run_module

pytestmark = pytest.mark.e2e


def test_a_missing_cli_stops_start_up_with_install_instructions(tmp_path):
    started = time.monotonic()
    result = run_module(CLAUDE_CLI_PATH=str(tmp_path / "no-such-claude"), PORT="0", OLLAMA_PORT="0")
    assert result.returncode != 0
    assert "npm install -g @anthropic-ai/claude-code" in result.stderr
    assert time.monotonic() - started < 20


def test_no_cli_anywhere_is_reported(tmp_path):
    result = run_module(CLAUDE_CLI_PATH="", PATH=str(tmp_path), PORT="0", OLLAMA_PORT="0")
    assert result.returncode != 0
    assert "was not found" in result.stderr


def test_a_public_address_without_a_key_is_refused():
    result = run_module(CLAUDE_CLI_PATH=find_test_cli(), HOST="0.0.0.0", BRIDGE_API_KEY="", PORT="0", OLLAMA_PORT="0")
    assert result.returncode != 0
    assert "BRIDGE_API_KEY" in result.stderr


def test_doctor_runs_the_feature_probes_against_the_real_cli():
    from harness import free_port

    result = run_module(
        "doctor",
        CLAUDE_CLI_PATH=find_test_cli(),
        ANTHROPIC_API_KEY="sk-ant-test",
        PORT=str(free_port()),
        OLLAMA_PORT=str(free_port()),
        PROBE_FEATURES="true",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for feature in ("basic", "caller_text", "single_call", "transcripts", "client_tools", "structured_output"):
        assert f"[ok  ] feature {feature}:" in result.stdout


def test_the_server_probes_the_cli_at_start_up_without_reaching_the_upstream(fake):
    server = BridgeServer(fake.base_url, PROBE_FEATURES="true").start()
    try:
        health = server.health()
        assert health["status"] == "ok"
        assert {name: f["state"] for name, f in health["features"].items()} == dict.fromkeys(health["features"], "ok")
        assert "caller_text" in health["features"]
        assert not fake.received, "the probes must not reach the configured upstream"
    finally:
        server.stop()


def test_both_ports_serve_the_same_app(bridge):
    import httpx

    assert httpx.get(f"{bridge.ollama_url}/api/version", timeout=5).json()["version"].count(".") == 2
    assert httpx.get(f"{bridge.base_url}/api/version", timeout=5).status_code == 200
    assert httpx.get(f"{bridge.ollama_url}/v1/models", timeout=5).status_code == 200


def test_a_port_in_use_is_one_line_naming_the_port_and_the_setting(tmp_path):
    import socket

    from harness import free_port

    for setting, other in (("PORT", "OLLAMA_PORT"), ("OLLAMA_PORT", "PORT")):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            result = run_module(
                CLAUDE_CLI_PATH=find_test_cli(),
                PROBE_FEATURES="false",
                **{setting: str(port), other: str(free_port())},
                STATE_DIR=str(tmp_path / "state"),
            )
        assert result.returncode != 0
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, result.stderr
        assert f"port {port} on 127.0.0.1 is already in use" in lines[0]
        assert f"set {setting} (or --{setting.lower().replace('_', '-')})" in lines[0]
        assert "Traceback" not in result.stderr


def test_the_banner_names_both_urls_the_key_and_client_settings(bridge):
    text = bridge.log_path.read_text(errors="replace")  # from the start: the banner comes first
    assert f"OpenAI API   http://127.0.0.1:{bridge.port}/v1" in text
    assert f"Ollama API   http://127.0.0.1:{bridge.ollama_port}" in text
    assert "API key      not required" in text
    for client in ("openai SDK", "Cline/Continue", "Cursor", "Open WebUI", "ollama SDK"):
        assert client in text
    assert f"OLLAMA_BASE_URL=http://127.0.0.1:{bridge.ollama_port}" in text


def test_a_proxy_the_tap_cannot_speak_stops_start_up_with_the_way_out(tmp_path):
    result = run_module(
        CLAUDE_CLI_PATH=find_test_cli(),
        PROBE_FEATURES="false",
        PORT="0",
        OLLAMA_PORT="0",
        STATE_DIR=str(tmp_path / "state"),
        ALL_PROXY="socks5://127.0.0.1:1080",
        HTTPS_PROXY="",
        https_proxy="",
    )
    assert result.returncode == 2
    assert "http:// proxies only" in result.stderr and "UPSTREAM_TAP=off" in result.stderr
    assert "Traceback" not in result.stderr


def test_doctor_names_a_proxy_the_tap_cannot_speak():
    result = run_module(
        "doctor", CLAUDE_CLI_PATH=find_test_cli(), ALL_PROXY="socks5://127.0.0.1:1080", HTTPS_PROXY="", https_proxy=""
    )
    assert result.returncode == 1
    assert "[FAIL] upstream tap: the upstream tap supports http:// proxies only, not socks5://" in result.stdout
