"""A process profile: what a CLI process is launched with. Spares are keyed by it.

Everything that can only be set when the CLI starts belongs here: model, system prompt,
output limit, structured-output schema, the caller's tools, effort, thinking on or off, and a
forced tool choice. Two requests with equal profiles can share a process. (``cli.launch``
turns a profile into files, argv and environment.)
"""

from __future__ import annotations

import dataclasses
import functools
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..core.messages import canonical_json
from ..core.turn import ToolSpec, TurnRequest
from ..errors import InvalidRequest
from .client_tools import ToolNames, upstream_tool_choice

MAX_SCHEMA_BYTES = 64 * 1024  # --json-schema travels in argv (at most 128 KiB per argument; docs/cli.md)

# Variables that keep the CLI from reading or injecting host context (docs/cli.md "Environment and
# system prompt").
QUIET_ENV = {
    "CLAUDE_CODE_DISABLE_CLAUDE_MDS": "1",
    "CLAUDE_CODE_DISABLE_AUTO_MEMORY": "1",
    "CLAUDE_CODE_TOTAL_TOKENS_REMINDER": "off",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
    "DISABLE_TELEMETRY": "1",
    "DISABLE_ERROR_REPORTING": "1",
    # No @-mention pass at all (files, directories, agents, MCP resources), whatever text
    # reaches the CLI: defence in depth behind client_composed (cli.wire.user_line).
    "CLAUDE_CODE_DISABLE_ATTACHMENTS": "1",
    # Never summarise a conversation: the caller's history reaches the model as the caller
    # sent it, and a worker's own history (marker turns) must not trigger a compaction request.
    "DISABLE_AUTO_COMPACT": "1",
    "DISABLE_COMPACT": "1",
}

# Never passed on: CLAUDE_CODE_SIMPLE would turn off subscription logins (docs/cli.md); the
# bridge's own keys are none of the CLI's business.
DROPPED_ENV = ("CLAUDE_CODE_SIMPLE", "BRIDGE_API_KEY")


@dataclass(frozen=True)
class Profile:
    model: str
    system: str | None = None
    max_tokens: int | None = None
    json_schema: str | None = None  # canonical JSON
    tools_json: str | None = None  # the caller's tools, canonical JSON (cli.client_tools)
    tools_offered: bool = True  # False: defined (the history may call them) but not offered
    effort: str | None = None  # --effort; None: the CLI's default
    thinking_off: bool = False  # CLAUDE_CODE_DISABLE_THINKING: the upstream gets no `thinking`
    # The upstream's tool_choice as canonical JSON ({"type": "any"}, {"type": "tool", ...},
    # disable_parallel_tool_use), sent through CLAUDE_CODE_EXTRA_BODY; None: the CLI's (auto).
    tool_choice_json: str | None = None
    # The account whose login the process runs with (its environment: cli.launch.Launcher).
    account: str = "default"

    @functools.cached_property
    def tool_names(self) -> ToolNames:
        """The caller's tool names and the names the model sees them under."""
        return ToolNames.of(tool["name"] for tool in json.loads(self.tools_json)) if self.tools_json else ToolNames({})

    def env(self, base: dict[str, str], max_retries: int) -> dict[str, str]:
        """The server's own environment (so ANTHROPIC_* reach the CLI), quieted and bounded."""
        env = {key: value for key, value in base.items() if key not in DROPPED_ENV}
        env.update(QUIET_ENV)
        env["CLAUDE_CODE_MAX_RETRIES"] = str(max_retries)
        if self.max_tokens is not None:
            env["CLAUDE_CODE_MAX_OUTPUT_TOKENS"] = str(self.max_tokens)
        else:
            env.pop("CLAUDE_CODE_MAX_OUTPUT_TOKENS", None)
        if self.thinking_off:
            env["CLAUDE_CODE_DISABLE_THINKING"] = "1"
        if self.tool_choice_json is not None:
            # The CLI merges this JSON into every upstream request body of the process. It
            # holds only bridge-made tool names (cli.client_tools: [A-Za-z0-9_-]), no caller text.
            env["CLAUDE_CODE_EXTRA_BODY"] = json.dumps({"tool_choice": json.loads(self.tool_choice_json)})
        return env

    @staticmethod
    def schema_json(schema: dict[str, Any] | None) -> str | None:
        return None if schema is None else json.dumps(schema, sort_keys=True, separators=(",", ":"))

    @staticmethod
    def tools_of(tools: Iterable[ToolSpec]) -> str | None:
        """Canonical JSON of ToolSpecs (None for no tools), so equal tool sets share spares."""
        specs = [{"name": t.name, "description": t.description, "input_schema": t.input_schema} for t in tools]
        return json.dumps(specs, sort_keys=True, separators=(",", ":")) if specs else None


def profile_for(request: TurnRequest, model: str, default_effort: str | None) -> Profile:
    """The profile a request's process is launched with; ``model`` is already resolved."""
    tools_json = Profile.tools_of(request.tools)
    profile = Profile(
        model=model,
        system=request.system,
        max_tokens=request.max_tokens,
        json_schema=Profile.schema_json(request.json_schema),
        tools_json=tools_json,
        tools_offered=request.tool_choice != "none",
        effort=request.effort or default_effort,
    )
    choice = upstream_tool_choice(request, profile.tool_names.to_cli if tools_json else {})
    return dataclasses.replace(
        profile,
        # The upstream refuses a forced tool choice while the model thinks.
        thinking_off=request.thinking is False or request.tool_choice == "required",
        tool_choice_json=canonical_json(choice) if choice is not None else None,
    )


def check_schema_size(schema: dict[str, Any]) -> None:
    """A structured-output schema must fit in the CLI's argv (``--json-schema``)."""
    if len(Profile.schema_json(schema) or "") > MAX_SCHEMA_BYTES:
        raise InvalidRequest(
            f"The response format's JSON schema is larger than {MAX_SCHEMA_BYTES} bytes.", param="response_format"
        )


def cli_retries(max_retries: int, fallback_model: str | None) -> int:
    """CLAUDE_CODE_MAX_RETRIES for CLI_MAX_RETRIES: the CLI falls back to ``--fallback-model``
    only after three overloaded answers in a row (docs/cli.md "Fallback model"), so with a
    fallback it needs at least two retries to get there."""
    return max(max_retries, 2) if fallback_model else max_retries
