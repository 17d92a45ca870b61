"""Shared fixtures: the fake Anthropic upstream and real servers driving the real CLI."""

from __future__ import annotations

import os
import tempfile

import pytest
from fake_upstream import FakeAnthropic
from harness import BridgeServer

TIERS = ("unit", "routes", "e2e")  # pytest.ini describes each


@pytest.hookimpl(tryfirst=True)  # before -m deselects: every collected test is checked
def pytest_collection_modifyitems(config, items):
    """Every test has exactly one tier marker (``pytestmark = pytest.mark.unit`` in its module),
    so ``pytest -m "not e2e"`` is the whole fast loop."""
    wrong = []
    for item in items:
        tiers = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if len(tiers) != 1:
            wrong.append(f"  {item.nodeid}: {', '.join(tiers) or 'no tier'}")
    if wrong:
        raise pytest.UsageError(
            "each test needs exactly one tier marker, pytest.mark.unit, .routes or .e2e "
            "(pytestmark in its module, see pytest.ini):\n" + "\n".join(wrong)
        )


# Nothing a test runs may write the user's own usage ledger or window state (Settings reads
# DATA_DIR when it is built; servers started by the harness get one of their own).
os.environ["DATA_DIR"] = tempfile.mkdtemp(prefix="bridge-test-data-")


@pytest.fixture(scope="session")
def fake():
    upstream = FakeAnthropic().start()
    yield upstream
    upstream.stop()


@pytest.fixture(autouse=True)
def _fresh_fake(request):
    """Each test starts with an empty script and record (only if it uses the fake)."""
    if "fake" in request.fixturenames:
        request.getfixturevalue("fake").reset()
    yield


@pytest.fixture(scope="session")
def bridge(fake):
    """A server shared by the tests that only need an ordinary one."""
    server = BridgeServer(fake.base_url).start()
    yield server
    server.stop()
    server.remove()


@pytest.fixture
def start_bridge(fake):
    """A factory for servers with their own settings: ``start_bridge(MAX_PROCESSES=2)``."""
    servers: list[BridgeServer] = []

    def start(wait: bool = True, **env: str) -> BridgeServer:
        server = BridgeServer(fake.base_url, **env).start(wait=wait)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        server.remove()  # nothing left behind in /tmp
