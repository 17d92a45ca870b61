"""What no CLI turn could answer, refused before any process is used: the caller's messages,
tools, tool choice, effort and schema, and what this CLI was found unable to do."""

from __future__ import annotations

from ..cli.client_tools import split_continuation
from ..cli.probe import ProbeReport
from ..cli.profile import check_schema_size
from ..core.messages import Message, ToolResultBlock, ToolUseBlock
from ..core.tools import check_history_calls, check_object_schema, check_tool_choice, check_tool_specs
from ..core.turn import EFFORT_LEVELS, TurnRequest
from ..errors import FeatureUnavailable, InvalidRequest


def check_request(request: TurnRequest, features: ProbeReport) -> None:
    """What no CLI turn could answer: raises InvalidRequest before any process is used."""
    messages = request.messages
    if not messages or messages[-1].role != "user":
        raise InvalidRequest("The last message must be a user message.", param="messages")
    require_features(request, features)
    check_tool_specs(request.tools)
    check_history_calls(messages, request.tools)
    check_tool_choice(request)
    if request.effort is not None and request.effort not in EFFORT_LEVELS:
        raise InvalidRequest(f"Unknown effort {request.effort!r}; use one of {', '.join(EFFORT_LEVELS)}.")
    if request.json_schema is not None:
        check_object_schema(request.json_schema, "The response format's JSON schema", param="response_format")
        check_schema_size(request.json_schema)
    if ends_with_tool_results(messages):
        if not request.tools or request.tool_choice == "none":
            raise InvalidRequest(
                "A request ending with tool results must also send its tools (and not tool_choice "
                '"none"): the results reach the model through them.',
                param="tools",
            )
        try:
            split_continuation(messages)
        except ValueError as exc:
            raise InvalidRequest(f"Invalid tool results: {exc}.", param="messages") from None


def require_features(request: TurnRequest, features: ProbeReport) -> None:
    """Refuse what this CLI was found unable to do, naming the feature and the version."""
    needed = []
    if len(request.messages) > 1:
        needed.append("transcripts")
    if request.tools or any(isinstance(b, ToolUseBlock) for m in request.messages for b in m.content):
        needed.append("client_tools")
    if request.json_schema is not None:
        needed.append("structured_output")
    for name in needed:
        refusal = features.refusal(name)
        if refusal:
            raise FeatureUnavailable(refusal, param=name)


def ends_with_tool_results(messages: list[Message]) -> bool:
    return bool(messages) and any(isinstance(block, ToolResultBlock) for block in messages[-1].content)
