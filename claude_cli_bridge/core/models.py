"""Which model names the bridge serves, and what each means to the CLI's ``--model``.

Aliases (``opus``, ``sonnet``, ``haiku``) resolve inside the CLI to the newest of each family;
full ``claude-*`` ids pass through verbatim; old ids that clients still send map to a family
alias through a configurable longest-prefix table. Ollama clients add tags (``sonnet:latest``):
a ``:latest`` tag names the same model. ``MODEL_ALIASES`` adds names of the operator's choosing
(``gpt-4o=sonnet``) for clients that cannot change the name they send; other names are refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import InvalidRequest, ModelNotFound

ALIASES = ("opus", "sonnet", "haiku")
MAX_MODEL_NAME = 256  # longer than any model id or alias; a name goes onto the CLI's argv


@dataclass(frozen=True)
class ModelInfo:
    id: str
    family: str
    context_length: int = 200_000
    created: int = 1_767_225_600  # 2026-01-01, a fixed date: ids are stable


CATALOG: tuple[ModelInfo, ...] = (
    ModelInfo("opus", "opus"),
    ModelInfo("sonnet", "sonnet"),
    ModelInfo("haiku", "haiku"),
    ModelInfo("claude-opus-5-5", "opus"),
    ModelInfo("claude-sonnet-5-5", "sonnet"),
    ModelInfo("claude-haiku-5-5", "haiku"),
    ModelInfo("claude-opus-4-8", "opus"),
    ModelInfo("claude-sonnet-4-6", "sonnet"),
    ModelInfo("claude-haiku-4-5", "haiku"),
)


def strip_tag(name: str) -> str:
    """``sonnet:latest`` -> ``sonnet``; other tags are kept (they name nothing we serve)."""
    name = name.strip()
    return name[: -len(":latest")] if name.endswith(":latest") else name


def family_of(model: str) -> str:
    for family in ALIASES:
        if family in model:
            return family
    return "claude"


def check_model_name(requested: str | None) -> None:
    """Refuse a model name before anything else touches it: at most ``MAX_MODEL_NAME``
    characters, printable (no NUL, no control characters). Every surface resolves its model
    through ``resolve_model``, so none can put such a name on argv or into a path. The
    message names the parameter and never repeats the name (it may be huge or unprintable)."""
    if requested is None:
        return
    if not isinstance(requested, str):
        raise InvalidRequest("The model name must be a string.", param="model")
    if len(requested) > MAX_MODEL_NAME:
        raise InvalidRequest(
            f"The model name is {len(requested)} characters long; at most {MAX_MODEL_NAME} are allowed.",
            param="model",
        )
    if not requested.isprintable():
        raise InvalidRequest(
            "The model name contains a control character (NUL, newline, tab or another unprintable one).",
            param="model",
        )


def resolve_model(
    requested: str | None, default: str, legacy: dict[str, str], aliases: dict[str, str] | None = None
) -> str:
    """The ``--model`` value for a requested name; raises InvalidRequest for a name that is
    not a plausible model name at all (``check_model_name``) and ModelNotFound for names that
    are neither Claude's nor in ``aliases`` (lower-case name -> a served name)."""
    check_model_name(requested)
    name = strip_tag(requested or "") or default
    lowered = name.lower()
    if aliases and lowered in aliases:
        return resolve_model(aliases[lowered], default, legacy)
    if lowered in ALIASES:
        return lowered
    if lowered.startswith("anthropic/"):  # LiteLLM-style provider prefix
        lowered = lowered.split("/", 1)[1]
        name = name.split("/", 1)[1]
    if lowered in ALIASES:
        return lowered
    if not lowered.startswith("claude-"):
        raise ModelNotFound(
            f"The model '{requested}' does not exist here. This bridge serves Claude models: "
            f"{', '.join(info.id for info in CATALOG)} (or any claude-* id).",
            param="model",
        )
    for prefix in sorted(legacy, key=len, reverse=True):
        if lowered.startswith(prefix.lower()):
            return legacy[prefix]
    return name
