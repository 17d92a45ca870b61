"""The OpenAI chat surface's routes over ASGI with a scripted engine: Open WebUI's title task
goes to the task model, a stream's reasoning_content comes before its content, listed models
and aliases are retrievable; and the requests refused before the engine (malformed bodies,
unknown models and routes, reasoning efforts, files and images) with a 4xx naming the problem,
in OpenAI's shape, as the openai SDK raises it."""

from __future__ import annotations

import base64
import json

import openai
import pytest
from scripted_engine import ScriptedEngine, client_for, text_turn
from test_documents_e2e import pdf_part
from test_vision_e2e import png_bytes

from claude_cli_bridge.core.turn import ThinkingDelta
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes

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


def openai_sdk(client) -> openai.AsyncOpenAI:
    """The openai SDK over the route tier's client: its errors as a caller sees them."""
    return openai.AsyncOpenAI(base_url="http://bridge.test/v1", api_key="unused", max_retries=0, http_client=client)


# -- requests refused before the engine ----------------------------------------------------------
@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"model": "sonnet", "messages": []}, "messages"),
        ({"model": "sonnet", "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": "sonnet", "messages": [{"role": "user", "content": 5}]}, "content"),
        ({"model": "sonnet", "messages": "hello"}, "messages"),
        ({"model": "sonnet", "max_tokens": "many", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
    ],
)
async def test_malformed_requests_get_a_400_that_names_the_problem(body, fragment):
    async with client_for(ScriptedEngine()) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) >= {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert fragment in error["message"]


async def test_bad_json_gets_a_400():
    async with client_for(ScriptedEngine()) as client:
        response = await client.post(
            "/v1/chat/completions", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert response.status_code == 400
    assert "JSON" in response.json()["error"]["message"]


async def test_unknown_model_gets_a_404():
    engine = ScriptedEngine()
    async with client_for(engine) as client:
        with pytest.raises(openai.NotFoundError) as caught:
            await openai_sdk(client).chat.completions.create(
                model="gpt-4o", messages=[{"role": "user", "content": "hi"}]
            )
    assert "gpt-4o" in caught.value.message
    assert not engine.requests


async def test_unknown_route_gets_a_404_in_openai_shape():
    async with client_for(ScriptedEngine()) as client:
        response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert "message" in response.json()["error"]


async def test_openai_unknown_reasoning_effort_is_a_400():
    async with client_for(ScriptedEngine()) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={"model": "sonnet", "messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "reasoning_effort"


@pytest.mark.parametrize(
    "part, message",
    [
        ({"type": "file", "file": {"file_id": "file-abc123"}}, "no file store"),
        ({"type": "file", "file": {"file_data": "data:application/pdf;base64,!!!"}}, "not valid base64"),
        (
            {"type": "file", "file": {"file_data": "data:application/zip;base64,UEsDBA==", "filename": "a.zip"}},
            "unsupported file",
        ),
        ({"type": "file", "file": {}}, "needs file.file_data"),
    ],
)
async def test_bad_files_are_a_400_naming_the_message_and_part(part, message):
    async with client_for(ScriptedEngine()) as client:
        with pytest.raises(openai.BadRequestError, match=message) as caught:
            await openai_sdk(client).chat.completions.create(
                model="sonnet",
                messages=[
                    {"role": "system", "content": "s"},
                    {"role": "user", "content": [{"type": "text", "text": "x"}, part]},
                ],
            )
    assert "messages[1].content[1]" in str(caught.value)


async def test_an_oversized_document_is_a_413():
    settings = Settings(_env_file=None, max_document_bytes=40)
    async with client_for(ScriptedEngine(settings=settings)) as client:
        with pytest.raises(openai.APIStatusError) as caught:
            await openai_sdk(client).chat.completions.create(
                model="sonnet", messages=[{"role": "user", "content": [pdf_part()]}]
            )
    assert caught.value.status_code == 413
    assert "messages[0].content[0]" in str(caught.value)


async def test_max_document_bytes_0_means_the_image_limit():
    settings = Settings(_env_file=None, max_document_bytes=0, max_image_bytes=1 << 20)
    async with client_for(ScriptedEngine(settings=settings)) as client:
        answer = await openai_sdk(client).chat.completions.create(
            model="sonnet", messages=[{"role": "user", "content": [pdf_part()]}]
        )
    assert answer.choices[0].message.content  # under the image limit: taken, not refused as over 0


@pytest.mark.parametrize(
    "url, status, fragment",
    [
        ("data:image/png;base64,@@@notbase64@@@", 400, "base64"),
        ("data:image/png;base64," + base64.b64encode(b"just some text").decode(), 400, "unsupported"),
        ("https://example.com/cat.png", 400, "data URL"),
        ("data:image/png;base64," + base64.b64encode(png_bytes(400, 400)).decode(), 413, "limit"),
    ],
)
async def test_bad_and_oversized_images_get_a_4xx_naming_the_problem(url, status, fragment):
    settings = Settings(_env_file=None, max_image_bytes=1000)
    async with client_for(ScriptedEngine(settings=settings)) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "sonnet",
                "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}],
            },
        )
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
    assert "messages[0].content[0]" in response.json()["error"]["message"]


async def test_image_urls_to_private_addresses_are_refused_when_fetching_is_on():
    settings = Settings(_env_file=None, allow_image_urls=True)
    async with client_for(ScriptedEngine(settings=settings)) as client:
        response = await client.post(
            "/v1/chat/completions",
            json={
                "model": "sonnet",
                "messages": [
                    {
                        "role": "user",
                        "content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1/health"}}],
                    }
                ],
            },
        )
    assert response.status_code == 400 and "private" in response.json()["error"]["message"]
