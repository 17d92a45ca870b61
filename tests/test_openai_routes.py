"""The OpenAI chat surface's routes over ASGI with a scripted engine: Open WebUI's title task
goes to the task model, a stream's reasoning_content comes before its content, listed models
and aliases are retrievable."""

from __future__ import annotations

import json

from scripted_engine import ScriptedEngine, client_for, text_turn

from claude_cli_bridge.core.turn import ThinkingDelta
from claude_cli_bridge.settings import Settings

TITLE = '### Task:\nGenerate a title.\nJSON format: { "title": "x" }\n<chat_history>\nUSER: hi\n</chat_history>'


async def test_openai_title_task_goes_to_the_task_model_without_a_conversation():
    engine = ScriptedEngine()
    async with client_for(engine) as client:
        body = {"model": "sonnet", "messages": [{"role": "user", "content": TITLE}], "id": "conv-1"}
        assert (await client.post("/v1/chat/completions", json=body)).status_code == 200
        await client.post("/v1/chat/completions", json={**body, "stream": True})
    assert (engine.requests[0].model, engine.requests[0].conversation_key) == ("haiku", None)
    assert engine.requests[1].model == "sonnet"


async def test_openai_stream_puts_reasoning_content_before_content():
    engine = ScriptedEngine(script=lambda request: [ThinkingDelta("T"), *text_turn("A")])
    async with client_for(engine) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "sonnet",
                "messages": [{"role": "user", "content": "x"}],
                "stream": True,
                "reasoning_effort": "high",
            },
        )
    frames = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: {")]
    deltas = [frame["choices"][0]["delta"] for frame in frames]
    assert [d for d in deltas if d.get("reasoning_content")] == [{"reasoning_content": "T"}]
    assert "".join(d.get("content") or "" for d in deltas) == "A"
    assert engine.requests[0].effort == "high"


async def test_retrieving_listed_models_and_aliases():
    settings = Settings(_env_file=None, model_aliases="gpt-4o=sonnet")
    engine = ScriptedEngine(settings=settings)
    async with client_for(engine) as client:
        listed = [entry["id"] for entry in (await client.get("/v1/models")).json()["data"]]
        assert "gpt-4o" in listed
        for model_id in listed:
            response = await client.get(f"/v1/models/{model_id}")
            assert response.status_code == 200 and response.json()["id"] == model_id
        assert (await client.get("/v1/models/gpt-4-turbo")).status_code == 404
        assert (await client.get("/v1/models/claude-3-5-sonnet-20241022")).status_code == 200
