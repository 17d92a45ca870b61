"""Fill-in-the-middle for chat models: a prompt and a suffix become one user turn.

Claude has no FIM mode, so the text before and after the insertion point is sent as
``<prefix>…</prefix><suffix>…</suffix>`` with an instruction, in the system prompt, to answer
with only what goes between. Shared by Ollama's ``/api/generate`` and OpenAI's legacy
``/v1/completions`` (both take a ``suffix``).
"""

from __future__ import annotations

FILL_IN_THE_MIDDLE = (
    "Fill in the middle. The user message holds a <prefix> and a <suffix>. Answer with only the "
    "text that belongs between them: do not repeat the prefix or the suffix, add no explanation "
    "and no code fences."
)


def fill_in_the_middle(prefix: str, suffix: str, system: str | None) -> tuple[str, str]:
    """The user text and the system prompt (the caller's, then the instruction)."""
    text = f"<prefix>{prefix}</prefix><suffix>{suffix}</suffix>"
    return text, f"{system}\n\n{FILL_IN_THE_MIDDLE}" if system else FILL_IN_THE_MIDDLE
