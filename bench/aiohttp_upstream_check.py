"""The tap's own client tests, run against the aiohttp stand-in (bench/aiohttp_upstream.py):
a pytest plugin that puts ``AiohttpUpstreamClient`` where ``UpstreamClient`` was, before the
tests import it, and copies each test's proxy variables into the process environment (aiohttp
reads proxies there, ``trust_env``; the tests hand ours a mapping).

    python bench/aiohttp_upstream_check.py    # tests/test_tap_upstream_e2e.py and test_tap_unit.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
import common  # noqa: F401 - puts the repository and tests/ on sys.path
from aiohttp_upstream import AiohttpUpstreamClient

PROXY_VARS = {"http_proxy", "https_proxy", "all_proxy", "no_proxy"}
_env = pytest.MonkeyPatch()


class EnvAiohttpUpstreamClient(AiohttpUpstreamClient):
    made = 0  # how many the tests built (the patch took: more than none)

    def __init__(self, base_url, env, context):
        EnvAiohttpUpstreamClient.made += 1
        for key in list(os.environ):
            if key.lower() in PROXY_VARS:
                _env.delenv(key)
        for key, value in env.items():
            if key.lower() in PROXY_VARS:
                _env.setenv(key, value)
        super().__init__(base_url, env, context)


def pytest_configure(config):
    from claude_cli_bridge.tap import server, upstream

    upstream.UpstreamClient = EnvAiohttpUpstreamClient
    server.UpstreamClient = EnvAiohttpUpstreamClient


def pytest_runtest_teardown(item):
    _env.undo()


def pytest_terminal_summary(terminalreporter):
    terminalreporter.write_line(f"aiohttp stand-in clients built by the tests: {EnvAiohttpUpstreamClient.made}")


if __name__ == "__main__":
    os.chdir(BENCH.parent)
    raise SystemExit(
        pytest.main(
            [
                "-p",
                "aiohttp_upstream_check",
                "-q",
                "tests/test_tap_upstream_e2e.py",
                "tests/test_tap_upstream_unit.py",
                "tests/test_tap_unit.py",
            ]
        )
    )
