"""The Ollama surface's routes over ASGI with a scripted engine: the tags list the aliases."""

from __future__ import annotations

from scripted_engine import ScriptedEngine, client_for

from claude_cli_bridge.settings import Settings


async def test_ollama_tags_list_the_aliases():
    engine = ScriptedEngine(settings=Settings(_env_file=None, model_aliases="gpt-4o=sonnet"))
    async with client_for(engine) as client:
        names = [entry["name"] for entry in (await client.get("/api/tags")).json()["models"]]
        assert "gpt-4o:latest" in names
        response = await client.post("/api/chat", json={"model": "gpt-4o:latest", "messages": [], "stream": False})
        assert response.status_code == 200
