"""A worker's turn: what the tap writes into its requests (``tap.inject.Assignment``), built
from the caller's request. Pure."""

from __future__ import annotations

import dataclasses
import uuid

from ..core.messages import Message, ThinkingBlock, ToolUseBlock
from ..core.turn import TurnRequest
from ..tap.inject import SIGNED_BY, Assignment
from .client_tools import offered_names, upstream_tool_choice


def assignment_for(request: TurnRequest, messages: list[Message]) -> tuple[Assignment, dict[str, str]]:
    """What the tap writes into a worker's request for this turn, and the map from the names
    the model sees the caller's tools under back to the caller's names.

    The model sees each tool under the caller's own name where it is a valid upstream name
    (``cli.client_tools.offered_names``); a thinking block carries the model that signed it
    (``tap.inject.SIGNED_BY``)."""
    offered = offered_names(
        [tool.name for tool in request.tools]
        + [b.name for m in messages for b in m.content if isinstance(b, ToolUseBlock)]
    )
    converted = []
    for message in messages:
        blocks = []
        for original in message.content:
            block = original
            if isinstance(block, ToolUseBlock):
                block = dataclasses.replace(block, name=offered[block.name])
            data = block.to_anthropic()
            if isinstance(block, ThinkingBlock):
                data[SIGNED_BY] = block.model
            blocks.append(data)
        converted.append({"role": message.role, "content": blocks})
    offering = request.tools if request.tool_choice != "none" else ()
    tools = tuple(
        {"name": offered[t.name], "description": t.description, "input_schema": t.input_schema} for t in offering
    )
    assignment = Assignment(
        marker=f"Bridge turn {uuid.uuid4().hex}: the upstream tap writes the conversation here.",
        messages=tuple(converted),
        system=request.system or None,
        tools=tools,
        tool_choice=upstream_tool_choice(request, offered),
        caller_tools=frozenset(offered[t.name] for t in offering),
    )
    return assignment, {offered[t.name]: t.name for t in offering}
