"""The model's signed thinking before its tool calls, kept until the caller sends the results.

With thinking on, the upstream wants the assistant turn that called tools back with its
thinking blocks first, signatures intact, when the conversation goes on after the calls (an
assistant turn of text and tool_use alone is refused). Callers never send thinking back (the
OpenAI and Ollama APIs have no place for a signature), so the bridge keeps it: each turn that
ended in tool calls is remembered by its calls, and a later request whose history holds those
calls gets the thinking put back in front of them before its transcript is written. Calls
are found by id, or by name and input for clients that drop ids (ollama-python), always
within the tenant (client key) whose turn made them: another key never gets them back.
"""

from __future__ import annotations

from collections import OrderedDict

from ..core.messages import Message, ThinkingBlock, ToolUseBlock

#: Tool-calling turns remembered; the oldest are forgotten first (a client that never sends
#: results back must not grow the memory).
LIMIT = 1024


class ThinkingMemory:
    def __init__(self, limit: int = LIMIT) -> None:
        self._limit = limit
        self._by_call: OrderedDict[tuple[str, ...], tuple[ThinkingBlock, ...]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._by_call)

    def remember(self, answer: Message, tenant: str = "") -> None:
        """Keep the thinking of an assistant answer that called tools (nothing otherwise)."""
        thinking = tuple(block for block in answer.content if isinstance(block, ThinkingBlock))
        calls = [block for block in answer.content if isinstance(block, ToolUseBlock)]
        if not thinking or not calls:
            return
        for key in _keys(calls[0], tenant):
            self._by_call[key] = thinking
            self._by_call.move_to_end(key)
        while len(self._by_call) > self._limit:
            self._by_call.popitem(last=False)

    def restore(self, messages: list[Message], tenant: str = "") -> list[Message]:
        """``messages`` with remembered thinking in front of the tool calls it preceded."""
        restored = []
        for message in messages:
            calls = [block for block in message.content if isinstance(block, ToolUseBlock)]
            has_thinking = any(isinstance(block, ThinkingBlock) for block in message.content)
            thinking = None
            if message.role == "assistant" and calls and not has_thinking:
                thinking = next((self._by_call[key] for key in _keys(calls[0], tenant) if key in self._by_call), None)
            restored.append(Message(message.role, thinking + message.content) if thinking else message)
        return restored


def _keys(call: ToolUseBlock, tenant: str) -> tuple[tuple[str, ...], ...]:
    return ((tenant, "id", call.id), (tenant, "call", call.name, call.input_json))
