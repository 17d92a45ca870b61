"""The one settings class. Read from the environment and `.env`; every field is described.

Environment names are the field names in upper case unless an alias says otherwise;
`.env.example` lists them all with their defaults (a test keeps the two in step).
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .core.reasoning import check_effort_setting

DEFAULT_LEGACY_MODELS = {
    "claude-3-5-sonnet": "sonnet",
    "claude-3-7-sonnet": "sonnet",
    "claude-3-5-haiku": "haiku",
    "claude-3-haiku": "haiku",
    "claude-3-opus": "opus",
    "claude-3-sonnet": "sonnet",
    "claude-2": "sonnet",
    "claude-instant": "haiku",
}


def parse_model_aliases(text: str) -> dict[str, str]:
    """``gpt-4o=sonnet, gpt-4o-mini=haiku`` -> {"gpt-4o": "sonnet", ...}, names lower-cased.
    Raises ValueError for a pair without ``=`` or with an empty side."""
    return dict(_model_aliases(text))


@functools.lru_cache(maxsize=32)
def _model_aliases(text: str) -> tuple[tuple[str, str], ...]:
    # Parsed once per distinct value: the settings' list methods run on every request.
    aliases: dict[str, str] = {}
    for pair in text.split(","):
        if not pair.strip():
            continue
        name, sep, model = pair.partition("=")
        if not sep or not name.strip() or not model.strip():
            raise ValueError(f"MODEL_ALIASES: {pair.strip()!r} is not a name=model pair")
        aliases[name.strip().lower()] = model.strip()
    return tuple(aliases.items())


@functools.lru_cache(maxsize=32)
def split_list(text: str) -> tuple[str, ...]:
    """A comma-separated setting's items, stripped, empty ones left out (parsed once per value)."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _default_state_dir() -> Path:
    return Path.home() / ".cache" / "claude-cli-bridge"


def _default_data_dir() -> Path:
    """The user's data directory (XDG's default on Linux, Application Support on macOS)."""
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "claude-cli-bridge"
    return Path.home() / ".local" / "share" / "claude-cli-bridge"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    # --- listeners -----------------------------------------------------------------
    host: str = Field(
        "127.0.0.1",
        validation_alias=AliasChoices("HOST", "SERVER_HOST"),
        description="Address both listeners bind (SERVER_HOST is accepted as an older alias).",
    )
    port: int = Field(
        8000,
        validation_alias=AliasChoices("PORT", "SERVER_PORT"),
        description="Port of the OpenAI-style listener (SERVER_PORT is accepted as an older alias).",
    )
    ollama_port: int = Field(22434, description="Port of the Ollama-style listener; 0 turns it off.")
    allow_public_bind: bool = Field(
        False, description="Allow binding a non-loopback HOST without BRIDGE_API_KEY (not recommended)."
    )

    # --- security --------------------------------------------------------------------
    bridge_api_key: str = Field(
        "",
        description="Comma-separated bearer keys required on every route but /health, /ready and GET /; empty = none.",
    )
    accounts_file: str = Field(
        "",
        description=(
            "TOML file of accounts (logins) and client keys (docs/accounts.md); "
            "empty = one account from the environment or your own CLI login."
        ),
    )
    cors_origins: str = Field("", description="Comma-separated origins allowed by CORS; empty turns CORS off.")
    log_content: bool = Field(
        False, description="Log prompts and answers (debugging only; off keeps them out of logs)."
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines as readable text, or as JSON lines (one object a line) for log collectors."
    )
    data_dir: Path = Field(
        default_factory=_default_data_dir,
        description="Where the usage ledger (usage-DAY.jsonl), error log and last subscription windows are kept.",
    )
    usage_retention_days: int = Field(
        90, description="Days of usage and error files kept in DATA_DIR; older ones are deleted; 0 keeps them all."
    )

    # --- the CLI ---------------------------------------------------------------------
    claude_cli_path: str = Field(
        "", description="Path of the claude binary; empty = `claude` on PATH, then a bundled one."
    )
    fallback_model: str = Field(
        "", description="Model(s) the CLI switches to after three overloaded answers in a row (--fallback-model)."
    )
    cli_max_retries: int = Field(
        1, description="CLAUDE_CODE_MAX_RETRIES given to the CLI, so upstream errors surface in seconds."
    )
    state_dir: Path = Field(
        default_factory=_default_state_dir,
        description="Private directory for the CLI processes' files (transcripts, tool configuration).",
    )
    cli_work_dir: Path = Field(
        Path("/tmp/claude-cli-bridge-work"),
        description=(
            "The CLI's empty working directory; its path is shown to the model, so it names nothing of the host."
        ),
    )

    upstream_tap: bool = Field(
        True,
        description=(
            "Relay the CLI's upstream requests through the bridge's loopback tap (windows from every "
            "response, the CLI's environment note kept from the model); off: the CLI connects directly."
        ),
    )
    keep_cli_environment_note: bool = Field(
        False,
        description="Forward the CLI's '# Environment' note (working directory, OS, shell) to the model (tap on).",
    )

    warm_spares: bool = Field(
        True,
        description=(
            "Spares run one warm-up turn at launch, answered by the tap (no quota), so a new "
            "conversation's first turn is as fast as a follow-up (needs UPSTREAM_TAP)."
        ),
    )
    worker_max_turns: int = Field(
        100,
        ge=1,
        description=(
            "With the tap, CLI processes are workers that serve any conversation's turns; each is "
            "replaced after this many turns (its own history grows with every turn it serves)."
        ),
    )

    # --- models ----------------------------------------------------------------------
    default_model: str = Field("sonnet", description="Model used when a request names none.")
    task_model: str = Field("haiku", description="Model for Open WebUI background tasks (titles, tags, follow-ups).")
    legacy_models: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LEGACY_MODELS),
        description="JSON map of old model-id prefixes to aliases; the longest matching prefix wins.",
    )
    model_aliases: str = Field(
        "",
        description=(
            "Other names to accept, for clients that cannot change the model they send: "
            "comma-separated name=model pairs, e.g. gpt-4o=sonnet,gpt-4o-mini=haiku; empty = none."
        ),
    )
    default_effort: str = Field(
        "",
        description=(
            "Effort when a request asks for none: low, medium, high, xhigh or max (the CLI's --effort); "
            "empty = the CLI's own default (medium with CLI 2.1.332, high with 2.1.277)."
        ),
    )

    # --- pool and conversations --------------------------------------------------------
    max_processes: int = Field(8, description="Most CLI processes alive at once (busy, held and spare).")
    max_memory_mb: int = Field(4096, description="Most resident memory of all CLI processes together, in MB.")
    spare_profiles: int = Field(2, description="How many recently seen request profiles keep a warm spare process.")
    max_spares_per_profile: int = Field(
        4, description="Most spares one profile keeps, however many new conversations arrived at once recently."
    )
    spare_demand_window_seconds: float = Field(
        600, description="How far back the peak of concurrent new conversations sizes each profile's spares."
    )
    max_conversations: int = Field(6, description="Most conversations whose CLI process is held for warm follow-ups.")
    conversation_idle_seconds: float = Field(900, description="A held conversation idle this long is released.")
    spare_idle_seconds: float = Field(1800, description="A spare process unused this long is stopped.")
    queue_size: int = Field(
        32, description="Most requests waiting for a CLI process; more are refused (503, Anthropic 529)."
    )
    queue_timeout_seconds: float = Field(30, description="Longest wait for a CLI process before 503 (Anthropic 529).")
    cli_backoff_max_seconds: float = Field(
        60,
        gt=0,
        description="When new CLI processes die before their first turn, the longest pause between attempts "
        "(the pause starts at 1 s and doubles).",
    )
    turn_timeout_seconds: float = Field(600, description="Longest a single turn may take.")
    silence_timeout_seconds: float = Field(180, description="Longest the CLI may stay silent during a turn.")
    shutdown_grace_seconds: float = Field(10, description="On shutdown, how long in-flight turns may finish.")
    drain_retry_after_seconds: int = Field(
        30,
        ge=1,
        description="Retry-After of turns refused while draining after SIGTERM: how long a router keeps this bridge "
        "out (cover a restart).",
    )
    probe_features: bool = Field(
        True,
        validation_alias=AliasChoices("PROBE_FEATURES", "PROBE_TRANSCRIPTS"),
        description="At start-up, check what this CLI can do (a few seconds, no quota); off: trust the version alone.",
    )

    # --- request limits ----------------------------------------------------------------
    max_request_bytes: int = Field(32 * 1024 * 1024, description="Largest request body accepted, in bytes.")
    max_messages: int = Field(2000, description="Most messages in one request.")
    max_image_bytes: int = Field(10 * 1024 * 1024, description="Largest decoded image, in bytes.")
    max_document_bytes: int = Field(
        20 * 1024 * 1024, description="Largest decoded document (PDF or text file part), in bytes."
    )
    allow_image_urls: bool = Field(False, description="Fetch http(s) image URLs (public addresses only).")
    image_url_timeout_seconds: float = Field(10, description="Timeout for fetching one image URL.")

    # --- Responses API ------------------------------------------------------------------
    responses_store_max: int = Field(
        1000, description="Most responses kept for previous_response_id and GET /v1/responses/{id}; 0 keeps none."
    )
    responses_store_max_mb: int = Field(
        256, description="Most memory (JSON size, in MB) of stored responses; each holds its whole conversation."
    )
    responses_store_persist: bool = Field(
        False, description="Also keep stored responses on disk (STATE_DIR/responses), so they survive a restart."
    )

    # --- embeddings --------------------------------------------------------------------
    embed_model: str = Field(
        "sentence-transformers/all-MiniLM-L6-v2", description="fastembed model used for embeddings."
    )
    embed_model_path: str = Field(
        "", description="Local ONNX sentence-transformer directory (offline); overrides EMBED_MODEL."
    )
    embed_cache_dir: Path = Field(
        default_factory=lambda: _default_state_dir() / "models",
        description="Where downloaded embedding models are kept.",
    )
    embed_preload: bool = Field(False, description="Load the embedding model at start-up instead of on first use.")
    embed_aliases: str = Field(
        "text-embedding-3-small,text-embedding-3-large,text-embedding-ada-002,all-minilm,nomic-embed-text,mxbai-embed-large",
        description="Comma-separated model names served by the configured embedding model.",
    )
    embed_max_inputs: int = Field(2048, description="Most inputs in one embeddings request.")
    embed_max_chars: int = Field(100_000, description="Most characters in one embeddings input.")

    @field_validator("model_aliases", mode="after")
    @classmethod
    def _check_aliases(cls, value: str) -> str:
        parse_model_aliases(value)
        return value

    @field_validator("default_effort", mode="after")
    @classmethod
    def _check_effort(cls, value: str) -> str:
        return check_effort_setting(value)

    def model_alias_map(self) -> dict[str, str]:
        return parse_model_aliases(self.model_aliases)

    @field_validator("state_dir", "embed_cache_dir", "cli_work_dir", "data_dir", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    def api_keys(self) -> list[str]:
        return list(split_list(self.bridge_api_key))

    def cors_origin_list(self) -> list[str]:
        return list(split_list(self.cors_origins))

    def embed_alias_list(self) -> list[str]:
        return list(split_list(self.embed_aliases))


def env_example() -> str:
    """The text of ``.env.example``: every setting, its description and its default (a test
    keeps the file equal to this; regenerate with ``python -m claude_cli_bridge.settings``)."""
    lines = [
        "# claude-cli-bridge settings: every setting with its default. Copy to .env and edit.",
        "# Environment variables override .env.",
    ]
    home = str(Path.home())
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        env_name = alias.choices[0] if isinstance(alias, AliasChoices) else name.upper()
        default = field.get_default(call_default_factory=True)
        if isinstance(default, bool):
            text = str(default).lower()
        elif isinstance(default, dict):
            text = json.dumps(default, separators=(",", ":"))
        else:
            text = str(default)
        if text.startswith(home):
            text = "~" + text[len(home) :]
        lines += ["", f"# {field.description}", f"{env_name}={text}"]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    Path(".env.example").write_text(env_example(), encoding="utf-8")
