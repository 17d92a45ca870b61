"""Open WebUI's background tasks, recognised on the neutral request (core.tasks)."""

from __future__ import annotations

import pytest

from claude_cli_bridge.core import tasks
from claude_cli_bridge.core.messages import Message, TextBlock
from claude_cli_bridge.core.turn import TurnRequest

pytestmark = pytest.mark.unit

# -- Open WebUI tasks --------------------------------------------------------------------------
TITLE = """### Task:
Generate a concise title summarizing the chat history.
### Output:
JSON format: { "title": "your concise title here" }
### Chat History:
<chat_history>
USER: Why is the sky blue?
ASSISTANT: Rayleigh scattering.
</chat_history>"""
HISTORY = "\n<chat_history>\nUSER: hi\n</chat_history>"
TAGS = '### Task:\nGenerate 1-3 broad tags...\nJSON format: { "tags": ["tag1", "tag2"] }' + HISTORY
FOLLOW_UPS = '### Task:\nSuggest follow-ups\nJSON format: { "follow_ups": ["Q?"] } not "title"' + HISTORY
QUERIES = '### Task:\nAnalyze the chat history...\n{\n  "queries": ["query1", "query2"]\n}' + HISTORY
OLD_TITLE = "Create a concise, 3-5 word title with an emoji as a title for the chat history." + HISTORY
EMOJI = "Your task is to reflect the speaker's likely facial expression through a fitting emoji.\n\nMessage: ```hi```"


@pytest.mark.parametrize(
    "content, stream, kind",
    [
        (TITLE, False, "title"),
        (TAGS, False, "tags"),
        (FOLLOW_UPS, False, "follow_ups"),
        (QUERIES, False, "queries"),
        (OLD_TITLE, False, "title"),
        (EMOJI, False, "emoji"),
        (TITLE, True, None),  # streamed: a user's chat, whatever it says
        (TITLE, None, None),
        ("Why is the sky blue?", False, None),
        ("### Task:\nsomething without a chat history", False, None),
    ],
)
def test_open_webui_tasks_are_recognised(content, stream, kind):
    request = TurnRequest(model="sonnet", messages=[Message("user", (TextBlock(content),))])
    assert tasks.task_kind(request, streaming=stream is not False) == kind


def test_a_task_sentence_in_the_system_prompt_is_recognised():
    request = TurnRequest(model="sonnet", messages=[Message("user", (TextBlock("hi"),))], system=EMOJI)
    assert tasks.task_kind(request, streaming=False) == "emoji"


def test_a_task_goes_to_the_task_model_outside_any_conversation():
    request = TurnRequest(model="sonnet", messages=[Message("user", (TextBlock(TITLE),))], conversation_key="c1")
    task = tasks.as_task(request, "haiku")
    assert task.one_off  # nobody continues it: its process is not held
    assert (task.model, task.conversation_key, task.messages) == ("haiku", None, request.messages)
