"""The request log and the usage ledger, pure: JSON log lines carry the record, and retention
deletes old days. (test_observe_routes.py has them over the routes.)"""

from __future__ import annotations

import json
import logging

import pytest

from claude_cli_bridge.observe.requestlog import JsonFormatter

pytestmark = pytest.mark.unit


def test_json_log_lines_carry_the_record():
    record = logging.LogRecord("claude_cli_bridge.requests", logging.INFO, "", 0, "line", (), None)
    record.request = {"api": "openai", "input_tokens": 3}
    data = json.loads(JsonFormatter().format(record))
    assert (data["event"], data["api"], data["input_tokens"]) == ("request", "openai", 3)
    plain = json.loads(
        JsonFormatter().format(logging.LogRecord("x", logging.WARNING, "", 0, "hello %s", ("you",), None))
    )
    assert plain["message"] == "hello you" and plain["level"] == "warning"


@pytest.mark.parametrize("retention, kept", [(0, 3), (2, 2), (30, 3)])
def test_retention_deletes_old_days(tmp_path, retention, kept):
    from claude_cli_bridge.observe.ledger import prune

    for day in ("2026-01-01", "2026-01-09", "2026-01-10"):
        (tmp_path / f"usage-{day}.jsonl").write_text("{}\n")
    prune(tmp_path, retention, lambda: 1768003200.0 + 3600)  # 2026-01-10 01:00 UTC
    assert len(list(tmp_path.glob("usage-*.jsonl"))) == kept
