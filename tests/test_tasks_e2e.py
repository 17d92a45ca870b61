"""Open WebUI's background tasks over the OpenAI connection: a title task goes to the task
model, a person's streamed chat does not. Real CLI, fake upstream, the openai SDK."""

from __future__ import annotations

import json

import openai
import pytest
from fake_upstream import Reply

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


TITLE_TASK = """### Task:
Generate a concise title summarizing the chat history.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: Why is the sky blue?
ASSISTANT: Rayleigh scattering.
</chat_history>"""


def test_open_webui_title_task_over_openai_goes_to_the_task_model(client, fake):
    fake.enqueue(Reply(chunks=['{"title": "Blue Sky"}']))
    answer = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": TITLE_TASK}])
    assert json.loads(answer.choices[0].message.content) == {"title": "Blue Sky"}
    assert answer.model == "sonnet"
    assert "haiku" in fake.received[-1].body["model"]

    client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": TITLE_TASK}], stream=True)
    list(client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "Hi"}], stream=True))
    assert "sonnet" in fake.received[-1].body["model"], "a streamed chat is a person's chat"
