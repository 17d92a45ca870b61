"""The JSON of /health is an interface: routers, dashboards and people's scripts read it by
key. This pins its shape, every key at every depth (lists by their first item), for a server
with keys and one account after a turn, against tests/specs/health_shape.json. A renamed or
dropped key fails here; a new key means updating the spec on purpose
(``UPDATE_HEALTH_SHAPE=1 pytest tests/test_health_shape_e2e.py``)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from harness import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

SPEC = Path(__file__).parent / "specs" / "health_shape.json"
KEY = "ccb-health-shape-key"
# Maps keyed by names the server chooses (accounts, windows, models, counters of its own):
# their entries' shape is pinned, not their names.
NAMED = {"accounts", "windows", "spare_targets", "features", "counters", "backoff"}


def shape(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        if key in NAMED:
            inner = [shape(v) for v in value.values()]
            return {"*": inner[0] if inner and all(i == inner[0] for i in inner) else sorted(map(str, inner))}
        return {k: shape(v, k) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(value[0])] if value and isinstance(value[0], dict) else []
    return None  # a leaf: its value may be null or not, depending on the moment


def test_the_health_json_keeps_its_shape(start_bridge, fake):
    server = start_bridge(BRIDGE_API_KEY=KEY, CLAUDE_CODE_OAUTH_TOKEN="test-oauth-token", ANTHROPIC_API_KEY=None)
    headers = {"authorization": f"Bearer {KEY}"}
    response = httpx.post(
        f"{server.openai_url}/chat/completions",
        headers=headers,
        json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    )
    assert response.status_code == 200

    def health() -> dict[str, Any]:
        return httpx.get(f"{server.base_url}/health", headers=headers, timeout=10).json()

    assert wait_for(lambda: health()["pool"]["busy"] == 0 and health()["pool"]["starting"] == 0, timeout=30)
    seen = shape(health())
    if os.environ.get("UPDATE_HEALTH_SHAPE"):
        SPEC.write_text(json.dumps(seen, indent=1, sort_keys=True) + "\n")
    assert seen == json.loads(SPEC.read_text())
    public = httpx.get(f"{server.base_url}/health", timeout=10).json()  # without the key: the summary only
    assert sorted(public) == ["cli_found", "cli_version", "status", "version"]
