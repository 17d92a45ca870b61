"""Model names with the openai SDK: MODEL_ALIASES are served, listed and retrievable, other
names are 404s, and every listed model (embedding models too) is retrievable. Real CLI, fake
upstream."""

from __future__ import annotations

import httpx
import openai
import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def aliased(fake):
    from harness import BridgeServer

    server = BridgeServer(fake.base_url, MODEL_ALIASES="gpt-4o=sonnet,gpt-4o-mini=haiku").start()
    yield server
    server.stop()


def test_model_aliases_are_served_listed_and_retrievable(aliased, fake):
    client = openai.OpenAI(base_url=aliased.openai_url, api_key="unused", max_retries=0)
    client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "Hi"}])
    assert "haiku" in fake.received[-1].body["model"]
    listed = [model.id for model in client.models.list()]
    assert {"gpt-4o", "gpt-4o-mini", "sonnet", "claude-sonnet-5-5"} <= set(listed)
    for model_id in listed:
        assert client.models.retrieve(model_id).id == model_id
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4-turbo", messages=[{"role": "user", "content": "Hi"}])
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4-turbo")


def test_every_listed_model_including_embedding_models_is_retrievable(start_bridge, tmp_path):
    from embed_model import assemble_model_dir

    server = start_bridge(EMBED_MODEL_PATH=str(assemble_model_dir(tmp_path)), HF_HUB_OFFLINE="1")
    client = openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0)
    listed = [model.id for model in client.models.list()]
    assert "text-embedding-3-small" in listed
    for model_id in listed:
        assert client.models.retrieve(model_id).id == model_id
    # Clients that drop /v1 retrieve at the root too.
    assert httpx.get(f"{server.base_url}/models/text-embedding-3-small", timeout=10).status_code == 200
