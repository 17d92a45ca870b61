"""Open WebUI's background tasks, recognised on the neutral request (both chat routes).

Open WebUI sends the same title, tag and follow-up prompts over its Ollama and its OpenAI
connection, as non-streaming chat requests. They are cheap and not part of any conversation,
so the routers send them to ``TASK_MODEL`` with no conversation key (``as_task``).
"""

from __future__ import annotations

import dataclasses

from .turn import TurnRequest

# Open WebUI's default task prompts (backend/open_webui/config.py) start with "### Task:" and
# quote the chat in <chat_history>; the JSON key they ask for names the task. Older or other
# prompts are recognised by a sentence of their own.
_TASK_KEYS = (
    ('"follow_ups"', "follow_ups"),
    ('"tags"', "tags"),
    ('"title"', "title"),
    ('"queries"', "queries"),
    ('"prompt"', "image_prompt"),
    ('"text"', "autocomplete"),
)
_TASK_SENTENCES = (
    ("Create a concise, 3-5 word title", "title"),
    ("reflect the speaker's likely facial expression", "emoji"),
    ("synthesize these responses into a single, high-quality response", "merge_responses"),
    ("choose and return the correct tool(s) from the list of available tools", "tool_selection"),
)


def task_kind(request: TurnRequest, streaming: bool) -> str | None:
    """Which Open WebUI background task a request is (``title``, ``tags``, ``follow_ups``...),
    or None for an ordinary chat. Only non-streaming requests are tasks: a streamed one is a
    person's chat, whatever it says."""
    if streaming or not request.messages:
        return None
    texts = ([request.system] if request.system else []) + [message.text for message in request.messages]
    last = request.messages[-1].text.lstrip()
    if last.startswith("### Task:") and "<chat_history>" in last:
        return next((kind for key, kind in _TASK_KEYS if key in last), "task")
    for sentence, kind in _TASK_SENTENCES:
        if any(sentence in text for text in texts):
            return kind
    return None


def as_task(request: TurnRequest, task_model: str) -> TurnRequest:
    """The request answered by the task model (empty: the request's own), outside any
    conversation: a one-off whose process is not held afterwards."""
    return dataclasses.replace(request, model=task_model or request.model, conversation_key=None, one_off=True)
