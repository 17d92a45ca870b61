"""Bounded schemathesis runs: no input may produce a 5xx or a hang.

One run uses the server's own OpenAPI description (/openapi.json); the other Ollama's
published description of /api/* (tests/specs/ollama-openapi.yaml). The real CLI answers
behind the fake upstream; FUZZ_EXAMPLES bounds the examples per operation (CI keeps it small).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from embed_model import assemble_model_dir
from harness import ROOT

pytestmark = pytest.mark.e2e

OLLAMA_SPEC = ROOT / "tests" / "specs" / "ollama-openapi.yaml"  # vendored, see tests/specs/README.md
EXAMPLES = os.environ.get("FUZZ_EXAMPLES", "12")


def schemathesis(schema: str, base_url: str, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", schema,
        "--checks", "not_a_server_error",
        "--max-examples", EXAMPLES,
        "--request-timeout", "60",
        "--max-time", os.environ.get("FUZZ_SECONDS", "75"),
        "--seed", "4711",
        "--no-shrink",
        "--report-dir", str(tmp_path),
        *extra,
    ]  # fmt: skip
    if base_url:
        command += ["--url", base_url]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=str(tmp_path))


@pytest.fixture(scope="module")
def fuzz_server(fake, tmp_path_factory):
    from harness import BridgeServer

    model_dir = assemble_model_dir(tmp_path_factory.mktemp("embed"))
    server = BridgeServer(
        fake.base_url,
        EMBED_MODEL_PATH=str(model_dir),
        HF_HUB_OFFLINE="1",
        MAX_PROCESSES="3",
        QUEUE_TIMEOUT_SECONDS="60",
    ).start()
    yield server
    server.stop()


def test_fuzz_the_servers_own_schema(fuzz_server, tmp_path):
    result = schemathesis(f"{fuzz_server.base_url}/openapi.json", "", tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_fuzz_the_responses_messages_and_completions_routes(fuzz_server, tmp_path):
    """The newer surfaces get a run of their own, so the whole-schema run's time is not all
    spent elsewhere: their bodies are the richest (input items, content blocks, tools)."""
    result = schemathesis(
        f"{fuzz_server.base_url}/openapi.json",
        "",
        tmp_path,
        "--include-path-regex",
        "^/v1/(responses|messages|completions)",
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_fuzz_the_published_ollama_api(fuzz_server, tmp_path):
    result = schemathesis(str(OLLAMA_SPEC), fuzz_server.ollama_url, tmp_path)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert fuzz_server.proc.poll() is None
