"""Knowing the CLI: the feature probes on the oldest supported version, and what the server
does with a CLI that is too old, newer, lacks a feature or cannot start. Stand-in CLIs are
small scripts (around the real CLI where a real turn is needed). test_cli_versions_unit.py has
the version range itself."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import httpx
import openai
import pytest
from harness import BridgeServer, find_test_cli, run_module

from claude_cli_bridge.cli.probe import run_probes
from claude_cli_bridge.cli.version import NEWEST_TESTED, OLDEST_SUPPORTED, dotted

pytestmark = pytest.mark.e2e


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def version_wrapper(tmp_path: Path, version: str, strip_flag: str | None = None) -> str:
    """The real CLI, reporting ``version``; optionally without one flag and its value."""
    strip = ""
    if strip_flag:
        strip = f"""
args=(); skip=0
for a in "$@"; do
  if [ $skip = 1 ]; then skip=0; continue; fi
  if [ "$a" = "{strip_flag}" ]; then skip=1; continue; fi
  args+=("$a")
done
set -- "${{args[@]}}"
"""
    return script(
        tmp_path,
        f"claude-{version}",
        f'if [ "$1" = "--version" ]; then echo "{version} (Claude Code)"; exit 0; fi\n{strip}exec "{find_test_cli()}" "$@"\n',
    )


def test_the_oldest_supported_cli_passes_every_feature_probe():
    floor = os.environ.get("CLAUDE_FLOOR_CLI_PATH")
    if not floor:
        pytest.skip("CLAUDE_FLOOR_CLI_PATH is not set (scripts/test installs the floor version and sets it)")
    report = asyncio.run(run_probes(floor, dotted(OLDEST_SUPPORTED), Path("/tmp/claude-cli-bridge-work")))
    assert report.failed() == [], report.snapshot()


def test_a_cli_below_the_floor_is_refused_naming_versions_and_the_upgrade(tmp_path):
    old = script(tmp_path, "claude", 'echo "2.1.112 (Claude Code)"\n')
    result = run_module(CLAUDE_CLI_PATH=old, PORT="0", OLLAMA_PORT="0")
    assert result.returncode != 0
    assert "2.1.112" in result.stderr and dotted(OLDEST_SUPPORTED) in result.stderr
    assert "npm install -g @anthropic-ai/claude-code@latest" in result.stderr
    doctor = run_module("doctor", CLAUDE_CLI_PATH=old)
    assert doctor.returncode != 0 and "[FAIL] CLI version" in doctor.stdout


def test_a_cli_that_cannot_start_is_a_start_up_failure_not_a_fallback(tmp_path):
    broken = script(
        tmp_path, "claude", 'if [ "$1" = "--version" ]; then echo "2.1.332 (Claude Code)"; exit 0; fi\n'
        "echo \"error: unknown option '--tools'\" >&2; exit 1\n"
    )  # fmt: skip
    result = run_module(CLAUDE_CLI_PATH=broken, PORT="0", OLLAMA_PORT="0", PROBE_FEATURES="true")
    assert result.returncode != 0
    assert "Refusing to serve" in result.stderr and "basic" in result.stderr and "unknown option" in result.stderr


def test_without_probes_a_crashing_cli_backs_off_and_requests_fail_fast(tmp_path, fake):
    broken = script(
        tmp_path, "claude", 'if [ "$1" = "--version" ]; then echo "2.1.332 (Claude Code)"; exit 0; fi\n'
        "echo \"error: unknown option '--tools'\" >&2; exit 1\n"
    )  # fmt: skip
    server = BridgeServer(fake.base_url, CLAUDE_CLI_PATH=broken, QUEUE_TIMEOUT_SECONDS="30").start()
    try:
        backoff = {}
        for _ in range(100):
            backoff = server.health()["pool"]["backoff"]
            if backoff:
                break
            time.sleep(0.1)
        assert backoff["default"]["failures"] >= 1 and "unknown option" in backoff["default"]["last_error"]
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0, timeout=10)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
        # 503 with the CLI's own words and Retry-After: the CLI cannot start now (issue 23).
        assert caught.value.status_code == 503 and "unknown option" in caught.value.message
        assert caught.value.response.headers.get("retry-after")
        assert not fake.received
    finally:
        server.stop()


def test_a_newer_cli_starts_with_a_warning(tmp_path, fake):
    server = BridgeServer(fake.base_url, CLAUDE_CLI_PATH=version_wrapper(tmp_path, "2.9.0")).start()
    try:
        assert server.health()["cli_version"] == "2.9.0"
        assert "newer than the newest version this bridge was tested with (2.1.332)" in server.log()
    finally:
        server.stop()


def test_a_failed_feature_is_switched_off_reported_and_refused_by_name(tmp_path, fake):
    """A CLI that ignores --json-schema: structured output is off, everything else works."""
    cli = version_wrapper(tmp_path, dotted(NEWEST_TESTED), strip_flag="--json-schema")
    server = BridgeServer(fake.base_url, CLAUDE_CLI_PATH=cli, PROBE_FEATURES="true").start()
    try:
        health = httpx.get(f"{server.base_url}/health", timeout=10).json()
        assert health["status"] == "degraded"
        assert health["features"]["structured_output"]["state"] == "failed"
        assert all(f["state"] == "ok" for name, f in health["features"].items() if name != "structured_output")
        client = openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0)
        with pytest.raises(openai.APIStatusError) as caught:
            client.chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": "hi"}], response_format={"type": "json_object"}
            )
        assert caught.value.status_code == 501
        assert "Structured output" in caught.value.message and dotted(NEWEST_TESTED) in caught.value.message
        assert client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}]).choices
        ollama = httpx.post(
            f"{server.ollama_url}/api/chat",
            json={"model": "sonnet", "stream": False, "format": "json", "messages": [{"role": "user", "content": "x"}]},
            timeout=30,
        )
        assert ollama.status_code == 501 and "Structured output" in ollama.json()["error"]
    finally:
        server.stop()
