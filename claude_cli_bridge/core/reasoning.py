"""Reasoning requests of every API, mapped onto what the CLI can do.

The CLI asks the upstream for adaptive thinking and an effort level (``output_config.effort``;
``medium`` with 2.1.332, ``high`` with 2.1.277, unless ``--effort`` says otherwise); models that take no
effort (older ids such as ``claude-sonnet-4-5``) get a fixed thinking budget instead, and the
CLI then sends no effort at all. ``CLAUDE_CODE_DISABLE_THINKING=1`` sends no ``thinking``
field: the model does not think. So a request can choose an effort level and whether the model
thinks; it cannot choose a thinking budget.

=====================================  ==========================  =================
Request                                 ``--effort``                thinking
=====================================  ==========================  =================
OpenAI ``reasoning_effort`` none        (default)                   off
OpenAI ``minimal`` / ``low``            ``low``                     adaptive
OpenAI ``medium`` / ``high``            ``medium`` / ``high``       adaptive
OpenAI ``xhigh`` / ``max``              ``xhigh`` / ``max``         adaptive
Ollama ``think: true``                  (default)                   adaptive, shown
Ollama ``think: false``                 (default)                   off
Ollama ``think: "low"|"medium"|"high"``  that level                  adaptive, shown
neither                                 ``DEFAULT_EFFORT``          adaptive
=====================================  ==========================  =================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import InvalidRequest
from .turn import EFFORT_LEVELS

#: OpenAI's reasoning_effort values (and the CLI's own above them) -> the CLI's level.
OPENAI_EFFORTS = {"minimal": "low", "low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max"}


@dataclass(frozen=True)
class Reasoning:
    """What a request asked for: an effort level (None: the default), whether the model may
    think (None: the CLI's default, adaptive), and whether the caller asked to see it."""

    effort: str | None = None
    thinking: bool | None = None
    show: bool = False


def from_openai(value: Any) -> Reasoning:
    """``reasoning_effort`` of a Chat Completions request; a 400 for values nobody defines."""
    if value is None:
        return Reasoning()
    if value == "none":
        return Reasoning(thinking=False)
    if isinstance(value, str) and value.lower() in OPENAI_EFFORTS:
        return Reasoning(effort=OPENAI_EFFORTS[value.lower()], show=True)
    raise InvalidRequest(
        f"reasoning_effort must be one of none, {', '.join(OPENAI_EFFORTS)} (got {value!r}).",
        param="reasoning_effort",
    )


def from_ollama(value: Any) -> Reasoning:
    """Ollama's ``think``: a boolean, or a level; a 400 for anything else."""
    if value is None:
        return Reasoning()
    if value is True:
        return Reasoning(show=True)
    if value is False:
        return Reasoning(thinking=False)
    if isinstance(value, str) and value.lower() in EFFORT_LEVELS:
        return Reasoning(effort=value.lower(), show=True)
    raise InvalidRequest(
        f"think must be true, false or one of {', '.join(EFFORT_LEVELS)} (got {value!r}).", param="think"
    )


def check_effort_setting(value: str) -> str:
    """``DEFAULT_EFFORT``: empty (the CLI's own default) or one of the CLI's levels."""
    value = value.strip().lower()
    if value and value not in EFFORT_LEVELS:
        raise ValueError(f"DEFAULT_EFFORT must be empty or one of {', '.join(EFFORT_LEVELS)} (got {value!r})")
    return value
