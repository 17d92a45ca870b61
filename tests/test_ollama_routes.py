"""The Ollama surface's routes over ASGI with a scripted engine: the tags list the aliases; and
the requests refused before the engine (model management, unknown models, bad bodies) with a
status and Ollama's plain-string error, as the ollama SDK raises it."""

from __future__ import annotations

import ollama
import pytest
from scripted_engine import ScriptedEngine, client_for, transport_for

from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.routes


async def test_ollama_tags_list_the_aliases():
    engine = ScriptedEngine(settings=Settings(_env_file=None, model_aliases="gpt-4o=sonnet"))
    async with client_for(engine) as client:
        names = [entry["name"] for entry in (await client.get("/api/tags")).json()["models"]]
        assert "gpt-4o:latest" in names
        response = await client.post("/api/chat", json={"model": "gpt-4o:latest", "messages": [], "stream": False})
        assert response.status_code == 200


def ollama_sdk(engine: ScriptedEngine) -> ollama.AsyncClient:
    """The ollama SDK over the app (ASGI): its errors as a caller sees them."""
    return ollama.AsyncClient(host="http://bridge.test", transport=transport_for(engine))


# -- requests refused before the engine ----------------------------------------------------------
@pytest.mark.parametrize(
    "call, status",
    [
        (lambda c: c.delete("sonnet"), 403),
        (lambda c: c.delete("llama3"), 404),
        (lambda c: c.copy("sonnet", "my-sonnet"), 400),
        (lambda c: c.create(model="mine", from_="sonnet", system="x"), 400),
        (lambda c: c.push("sonnet"), 400),
    ],
)
async def test_model_management_answers_clear_errors(call, status):
    with pytest.raises(ollama.ResponseError) as caught:
        await call(ollama_sdk(ScriptedEngine()))
    assert caught.value.status_code == status
    assert caught.value.error and "No route" not in caught.value.error


async def test_unknown_model_is_a_404():
    engine = ScriptedEngine()
    client = ollama_sdk(engine)
    with pytest.raises(ollama.ResponseError) as caught:
        await client.chat(model="llama3:8b", messages=[{"role": "user", "content": "hi"}])
    assert caught.value.status_code == 404 and "llama3" in caught.value.error
    with pytest.raises(ollama.ResponseError) as caught:
        await client.show("llama3")
    assert caught.value.status_code == 404
    assert not engine.requests


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"model": "sonnet", "messages": "hello"}, "messages"),
        ({"model": "sonnet", "messages": [{"role": "wizard", "content": "x"}]}, "role"),
        ({"model": "sonnet", "messages": [{"role": "user", "content": "x", "images": ["%%%"]}]}, "base64"),
        (
            {"model": "sonnet", "stream": False, "messages": [{"role": "user", "content": "x", "images": ["%%%"]}]},
            "base64",
        ),
        ({"model": "sonnet", "format": "yaml", "messages": [{"role": "user", "content": "x"}]}, "format"),
        ({"model": "sonnet", "prompt": "x", "raw": True, "system": "s"}, "raw"),
    ],
)
async def test_bad_requests_are_a_400_in_ollamas_shape(body, fragment):
    path = "/api/generate" if "prompt" in body else "/api/chat"
    async with client_for(ScriptedEngine()) as client:
        response = await client.post(path, json=body)
    assert response.status_code == 400
    assert list(response.json()) == ["error"] and fragment in response.json()["error"]
