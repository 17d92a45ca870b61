"""Checks on a caller's tools before any of them reaches the model.

A tool the model cannot be offered faithfully is refused (400 naming it) rather than
dropped: the CLI would otherwise skip it silently and the model would answer without it.
A history that calls a tool the request does not define is refused too: such a call could
only reach the CLI as one of its own tool names (``Bash``, ``Read``...), which the bridge
never lets the model use.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from ..errors import InvalidRequest
from .messages import Message, ToolUseBlock
from .turn import ToolSpec, TurnRequest

MAX_NAME_LENGTH = 256


def check_tool_specs(tools: Iterable[ToolSpec]) -> None:
    """Raise InvalidRequest for a duplicate or unusable name, or a schema that is not a valid
    JSON Schema of an object (the only kind of input a tool call can carry)."""
    seen: set[str] = set()
    for tool in tools:
        where = f"tool '{tool.name}'"
        if not tool.name or len(tool.name) > MAX_NAME_LENGTH or not tool.name.isprintable():
            raise InvalidRequest(
                f"Tool name {tool.name!r} is not usable: it must be 1 to {MAX_NAME_LENGTH} printable characters.",
                param="tools",
            )
        if tool.name in seen:
            raise InvalidRequest(f"Two tools are named '{tool.name}'; tool names must be unique.", param="tools")
        seen.add(tool.name)
        check_object_schema(tool.input_schema, f"{where}: parameters", param="tools")


def check_object_schema(schema: Any, where: str, *, param: str) -> None:
    """A valid JSON Schema whose root describes an object; raises InvalidRequest naming ``where``."""
    if not isinstance(schema, dict):
        raise InvalidRequest(f"{where} must be a JSON Schema object.", param=param)
    root_type = schema.get("type", "object")
    if root_type != "object":
        raise InvalidRequest(
            f'{where} must describe an object ("type": "object"), not {root_type!r}: the model can '
            "only be given object inputs.",
            param=param,
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        location = "/".join(str(part) for part in exc.path) or "root"
        raise InvalidRequest(
            f"{where} is not a valid JSON Schema (at {location}): {exc.message}", param=param
        ) from None


def check_history_calls(messages: Iterable[Message], tools: Iterable[ToolSpec]) -> None:
    """Every tool call in the history must name one of the request's tools."""
    defined = {tool.name for tool in tools}
    for number, message in enumerate(messages):
        for block in message.content:
            if isinstance(block, ToolUseBlock) and block.name not in defined:
                raise InvalidRequest(
                    f"The conversation calls a tool named '{block.name}' that the request does not define "
                    f"(message {number} after merging consecutive turns); send its definition in 'tools'.",
                    param="tools",
                )


def check_tool_choice(request: TurnRequest) -> None:
    """A forced tool choice needs the tool among the request's tools, and cannot be combined
    with structured output (which the CLI answers through a tool of its own)."""
    if request.tool_choice != "required":
        return
    if not request.tools:
        raise InvalidRequest('tool_choice "required" (or a named tool) needs tools.', param="tool_choice")
    if request.forced_tool is not None and request.forced_tool not in {tool.name for tool in request.tools}:
        raise InvalidRequest(
            f"tool_choice names {request.forced_tool!r}, which is not among the request's tools.", param="tool_choice"
        )
    if request.json_schema is not None:
        raise InvalidRequest(
            "A forced tool choice cannot be combined with a JSON response format: the CLI answers those "
            "through a tool of its own.",
            param="tool_choice",
        )
