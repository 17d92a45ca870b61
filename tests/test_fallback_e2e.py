"""FALLBACK_MODEL end to end: the real CLI switches to it when the upstream says the model is
overloaded, and the answer comes back."""

from __future__ import annotations

import httpx
import pytest
from fake_upstream import Reply

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]


def test_an_overloaded_model_falls_back_to_the_fallback_model(start_bridge, fake):
    server = start_bridge(FALLBACK_MODEL="haiku")
    fake.handler = lambda body: (
        Reply(chunks=["from haiku"]) if "haiku" in body["model"] else Reply(status=529, error_type="overloaded_error")
    )
    response = httpx.post(
        f"{server.openai_url}/chat/completions",
        json={"model": "sonnet", "messages": [{"role": "user", "content": "hi"}]},
        timeout=90,
    )
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "from haiku"
    models = [call.body["model"] for call in fake.received]
    assert "sonnet" in models[0] and "haiku" in models[-1]
    assert models.count(models[0]) == 3  # the CLI switches after three overloaded answers in a row
