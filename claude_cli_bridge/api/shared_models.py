"""Request-body models the OpenAI and Ollama surfaces share: a lenient base (fields a model
does not declare are kept, not refused) and the function tool both APIs send, in the same
shape (``{"type": "function", "function": {"name", "description", "parameters"}}``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Lenient(BaseModel):
    model_config = ConfigDict(extra="allow")


class FunctionDef(Lenient):
    name: str
    """Function name the model may call."""

    description: str | None = None
    """What the function does."""

    parameters: dict[str, Any] | None = None
    """JSON schema of the arguments."""


class ToolDef(Lenient):
    type: str = "function"
    """Always ``function``."""

    function: FunctionDef
    """The function."""
