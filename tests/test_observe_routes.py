"""The request record and its consumers, on the route tier (scripted engine): the request log,
the usage ledger, /metrics and the dashboard's data, all holding what the client received."""

from __future__ import annotations

import base64
import json
import logging

import pytest
from prometheus_client.parser import text_string_to_metric_families
from scripted_engine import ScriptedEngine, client_for

from claude_cli_bridge.core.turn import TextDelta, TurnDone, Usage
from claude_cli_bridge.errors import CliCrashed, ModelNotFound, PoolBusy
from claude_cli_bridge.observe.ledger import print_summary, read_rows, read_usage
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes

USAGE = Usage(input_tokens=17, output_tokens=9, cache_read_input_tokens=4, cache_creation_input_tokens=2)


def settings(tmp_path, **extra) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **extra)


def engine(tmp_path, script=None, **extra) -> ScriptedEngine:
    done = TurnDone("end_turn", USAGE, "claude-sonnet-test", {"load_ns": 2_000_000}, how="spare")
    return ScriptedEngine(
        settings=settings(tmp_path, **extra), script=script or (lambda request: [TextDelta("Hi"), done])
    )


def metric_samples(text: str) -> dict[str, list]:
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


async def test_one_log_line_and_one_ledger_line_hold_the_tokens_the_client_got(tmp_path, caplog):
    scripted = engine(tmp_path)
    caplog.set_level(logging.INFO, logger="claude_cli_bridge.requests")
    async with client_for(scripted) as client:
        response = await client.post(
            "/v1/chat/completions", json={"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}
        )
    usage = response.json()["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (17 + 4 + 2, 9)

    lines = [r for r in caplog.records if r.name == "claude_cli_bridge.requests"]
    assert len(lines) == 1
    text = lines[0].getMessage()
    assert "openai POST /v1/chat/completions model=sonnet stream=no process=spare wait=0.002s" in text
    assert "tokens in=17 out=9 cache-read=4 cache-write=2 status=200" in text
    assert "x" not in text.split("model=")[0]  # no prompt text

    rows = read_usage(tmp_path / "data", 1)
    assert len(rows) == 1
    row = rows[0]
    assert (row["input_tokens"], row["output_tokens"], row["cache_read_tokens"], row["cache_write_tokens"]) == (
        17,
        9,
        4,
        2,
    )
    assert (row["api"], row["model"], row["stream"], row["how"], row["status"]) == (
        "openai",
        "sonnet",
        False,
        "spare",
        200,
    )
    assert row["first_token_s"] is not None and row["duration_s"] >= row["first_token_s"]


async def test_streams_are_recorded_with_their_tokens_and_in_band_failures(tmp_path, caplog):
    calls = iter(
        [[TextDelta("a"), TurnDone("end_turn", USAGE, "m", {}, how="held")], [TextDelta("a"), CliCrashed("boom")]]
    )
    scripted = engine(tmp_path, script=lambda request: next(calls))
    caplog.set_level(logging.INFO, logger="claude_cli_bridge.requests")
    body = {"model": "haiku", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    async with client_for(scripted) as client:
        ok = await client.post("/api/chat", json=body)
        failed = await client.post("/api/chat", json=body)
    assert ok.status_code == failed.status_code == 200
    assert '"error"' in failed.text.splitlines()[-1]
    rows = read_usage(tmp_path / "data", 1)
    assert [(r["api"], r["stream"], r["status"], r["in_band_error"]) for r in rows] == [
        ("ollama", True, 200, False),
        ("ollama", True, 502, True),
    ]
    assert rows[0]["output_tokens"] == 9
    errors = (tmp_path / "data").glob("errors-*.jsonl")
    [error_row] = [json.loads(line) for path in errors for line in path.read_text().splitlines()]
    assert error_row["status"] == 502 and "cli_crashed" in error_row["error"]
    assert "(in-band error)" in caplog.records[-1].getMessage()


async def test_a_refusal_before_the_first_byte_is_recorded_with_its_status(tmp_path):
    scripted = engine(tmp_path, script=lambda request: [PoolBusy("busy", retry_after=2)])
    async with client_for(scripted) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "opus", "stream": True, "messages": [{"role": "user", "content": "x"}]},
        )
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 503
    assert read_usage(tmp_path / "data", 1) == []  # refused: no model served it, so no usage
    [row] = read_rows(tmp_path / "data", "errors", 1)
    assert (row["status"], row["route"], row["model"]) == (503, "/v1/chat/completions", "opus")
    refusals = metric_samples(metrics)["bridge_refusals"]
    assert any(s.labels == {"api": "openai", "status": "503", "code": "pool_busy"} and s.value == 1 for s in refusals)


async def test_metrics_parse_and_count_requests_tokens_and_pool(tmp_path):
    scripted = engine(tmp_path)
    async with client_for(scripted) as client:
        for _ in range(3):
            await client.post(
                "/v1/chat/completions", json={"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}
            )
        await client.get("/v1/models")
        response = await client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    requests = {
        (s.labels["route"], s.labels["model"], s.labels["status"]): s.value
        for s in samples["bridge_requests"]
        if s.name.endswith("_total")
    }
    assert requests[("/v1/chat/completions", "sonnet", "200")] == 3
    assert requests[("/v1/models", "", "200")] == 1
    tokens = {s.labels["kind"]: s.value for s in samples["bridge_tokens"] if s.name.endswith("_total")}
    assert tokens == {"input": 51, "output": 27, "cache_read": 12, "cache_write": 6}
    counts = [s for s in samples["bridge_time_to_first_token_seconds"] if s.name.endswith("_count")]
    assert counts[0].value == 3
    assert {s.labels["state"] for s in samples["bridge_pool_processes"]} >= {"busy", "starting"}


async def test_metrics_and_dashboard_need_the_key_and_the_browser_can_send_it_as_basic_auth(tmp_path):
    scripted = engine(tmp_path, bridge_api_key="secret-key")
    async with client_for(scripted) as client:
        assert (await client.get("/metrics")).status_code == 401
        refused = await client.get("/dashboard")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic")
        assert (await client.get("/metrics", headers={"authorization": "Bearer secret-key"})).status_code == 200
        basic = "Basic " + base64.b64encode(b"anyone:secret-key").decode()
        page = await client.get("/dashboard", headers={"authorization": basic})
        assert page.status_code == 200 and "dashboard.js" in page.text
        wrong = "Basic " + base64.b64encode(b"anyone:wrong").decode()
        assert (await client.get("/dashboard/data", headers={"authorization": wrong})).status_code == 401
        data = (await client.get("/dashboard/data", headers={"authorization": basic})).json()
    # The refused requests are recorded (not /metrics or the dashboard themselves).
    assert data["recent"] == []
    assert data["cli_version"] == "scripted"


async def test_dashboard_data_lists_the_latest_requests_and_usage_per_model_per_day(tmp_path):
    scripted = engine(tmp_path)
    async with client_for(scripted) as client:
        for model in ("sonnet", "haiku", "sonnet"):
            await client.post(
                "/v1/chat/completions", json={"model": model, "messages": [{"role": "user", "content": "x"}]}
            )
        data = (await client.get("/dashboard/data")).json()
        assert (await client.get("/dashboard/static/dashboard.js")).status_code == 200
        assert (await client.get("/dashboard/static/nope.js")).status_code == 404
    assert [r["model"] for r in data["recent"]] == ["sonnet", "haiku", "sonnet"]
    assert {(u["model"], u["requests"], u["output_tokens"]) for u in data["usage"]} == {
        ("haiku", 1, 9),
        ("sonnet", 2, 18),
    }


async def test_the_ledger_survives_a_restart_and_usage_summarises_it(tmp_path, capsys):
    async with client_for(engine(tmp_path)) as client:
        await client.post(
            "/v1/chat/completions", json={"model": "sonnet", "messages": [{"role": "user", "content": "x"}]}
        )
    async with client_for(engine(tmp_path)) as client:  # a new app reads the ledger
        data = (await client.get("/dashboard/data")).json()
    assert data["usage"][0]["requests"] == 1
    assert print_summary(tmp_path / "data", 7, as_json=False) == 0
    out = capsys.readouterr().out
    assert "sonnet" in out and "17" in out and "total" in out


async def test_a_request_for_an_unknown_model_is_an_error_of_its_route_not_usage_of_that_model(tmp_path):
    # What the real engine does with a name it does not serve (core.models.resolve_model).
    scripted = engine(tmp_path, script=lambda request: [ModelNotFound("The model 'gpt-4o' does not exist here.")])
    async with client_for(scripted) as client:
        for _ in range(2):
            response = await client.post(
                "/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
            )
            assert response.status_code == 404
        data = (await client.get("/dashboard/data")).json()
    assert data["usage"] == [] and read_usage(tmp_path / "data", 1) == []
    [errors] = data["errors"]
    assert (errors["route"], errors["errors"], errors["statuses"]) == ("/v1/chat/completions", 2, {"404": 2})
