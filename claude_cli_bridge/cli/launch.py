"""Launching a CLI process: its private directory, its files, its argv and its environment.

``build_argv`` is the one place that knows the CLI's command line; the pool's launches and
the feature probes (``cli.probe``) both go through ``Launcher``, so a probe checks exactly
what serves requests.

Each process gets a private directory (mode 0700) under the state directory, removed with
the process whatever happens, a failed launch included:

- ``tmp/``: the CLI's TMPDIR (its sockets and image files land there);
- ``system-prompt.txt``: the caller's system prompt (argv is capped at 128 KiB per argument);
- ``settings.json``: permission rules denying every file, shell and network tool, plus the
  deferring hook when the caller has tools (``cli.client_tools``);
- ``transcript.jsonl``: the history to resume, ``mcp.json``/``tools.json``/``results.json``:
  the caller's tools.

The working directory is one empty directory shared by every process (``CLI_WORK_DIR``,
``/tmp/claude-cli-bridge-work`` by default): the CLI tells the model its path, so it names
nothing of the host (no user name, no run id) and is the same for every process.

When the login comes from the environment (``CLAUDE_CODE_OAUTH_TOKEN``, ``ANTHROPIC_API_KEY``,
``ANTHROPIC_AUTH_TOKEN``), the CLI also gets a private, empty configuration directory: nothing
of the user's own configuration reaches it, in particular not the account e-mail address that
the CLI otherwise tells the model (``cli.login``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import stat
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.messages import Message, TextBlock, ToolResultBlock
from .client_tools import hook_settings, split_continuation, with_cli_names, write_config
from .process import CliProcess
from .profile import Profile
from .wire import write_transcript

if TYPE_CHECKING:
    from ..tap import Tap

log = logging.getLogger(__name__)

WARMUP_TIMEOUT_SECONDS = 60

# Defence in depth: the CLI runs with no built-in tools (--tools ""), but features that read
# or run something internally consult these rules too (the @-mention reader checks the Read
# rule: a bare tool name denies every path, where "Read(**)" would cover the project only).
DENIED_TOOLS = (
    "Read", "Write", "Edit", "MultiEdit", "NotebookEdit", "Glob", "Grep", "LS", "Bash", "BashOutput",
    "KillShell", "WebFetch", "WebSearch", "Task", "Agent", "TodoWrite", "Skill", "SlashCommand",
    "PowerShell", "LSP", "ListMcpResourcesTool", "ReadMcpResourceTool",
)  # fmt: skip
PERMISSIONS = {"defaultMode": "dontAsk", "deny": list(DENIED_TOOLS)}


@dataclass(frozen=True)
class LaunchFiles:
    """Paths a launch passes to the CLI (None: not used by this launch)."""

    system_prompt: Path | None = None
    settings: Path | None = None
    transcript: Path | None = None
    mcp_config: Path | None = None


def build_argv(cli: str, profile: Profile, files: LaunchFiles, fallback_model: str = "") -> list[str]:
    """The command line of a persistent stream-json process for ``profile``.

    Safety comes first: no built-in tools, no setting sources (user, project, local), no MCP
    servers but the caller's, no slash commands, nothing persisted. ``fallback_model``
    (FALLBACK_MODEL, the operator's setting, never caller text) is what the CLI switches to
    when the model is overloaded; left out when it names the model itself.
    """
    args = [
        cli,
        "-p",
        "--input-format", "stream-json",
        "--output-format", "stream-json",
        "--verbose",
        "--include-partial-messages",
        "--tools", "",
        "--setting-sources", "",
        "--strict-mcp-config",
        "--disable-slash-commands",
        "--no-session-persistence",
        "--model", profile.model,
    ]  # fmt: skip
    if files.system_prompt is not None:
        args += ["--system-prompt-file", str(files.system_prompt)]  # argv caps one argument at 128 KiB
    else:
        args += ["--system-prompt", ""]  # without it the model gets Claude Code's agent prompt
    if files.settings is not None:
        args += ["--settings", str(files.settings)]
    if profile.json_schema is not None:
        args += ["--json-schema", profile.json_schema]
    if profile.effort is not None:
        args += ["--effort", profile.effort]
    if files.mcp_config is not None:
        args += ["--mcp-config", str(files.mcp_config), "--allowedTools", f"{CLIENT_TOOLS_PATTERN}"]
    if files.transcript is not None:
        args += ["--resume", str(files.transcript), "--fork-session"]
    if fallback_model and fallback_model != profile.model:
        args += ["--fallback-model", fallback_model]
    return args


CLIENT_TOOLS_PATTERN = "mcp__client__*"


ENV_LOGINS = ("CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN")


class WorkDirUnusable(RuntimeError):
    """The shared working directory cannot be used safely; the message says why."""


def prepare_work_dir(path: Path) -> None:
    """Create the shared empty working directory, or check one that exists: a real directory
    (no symlink), owned by this user, private. Raises WorkDirUnusable otherwise."""
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700, parents=False)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise WorkDirUnusable(f"CLI_WORK_DIR {path} is not a directory (a symlink or a file is refused).")
    if info.st_uid != os.geteuid():
        raise WorkDirUnusable(f"CLI_WORK_DIR {path} belongs to another user; set CLI_WORK_DIR to a path of your own.")
    path.chmod(0o700)


@dataclass
class Launcher:
    """Starts CLI processes for the pool (and the probes): ``await launcher(profile, history)``.

    ``history`` is what the process must hold: resumed from a transcript of it, with the
    caller's tools served over MCP; a history ending in tool results makes the process go
    on by itself (see cli.client_tools).

    ``account_envs`` holds each account's environment (``accounts.credentials``: its login
    and no other's); a profile's ``account`` picks one. Without it there is one account,
    ``default``, with ``base_env`` (and a private configuration directory when the login
    comes from the environment).
    """

    cli: str
    state_dir: Path
    base_env: dict[str, str]
    work_dir: Path
    max_retries: int = 1
    fallback_model: str = ""
    account_envs: dict[str, dict[str, str]] | None = None
    #: The upstream tap the CLI sends its requests to; None: the CLI connects to the upstream
    #: directly (UPSTREAM_TAP=off, and the probes). A process's URL names its account.
    tap: Tap | None = None
    #: Spares run the warm-up turn the tap answers (tap.warmup), so their first real turn
    #: costs what a later one does.
    warm_spares: bool = True
    #: Every process is a worker (tap.inject): it holds no conversation, the tap writes the
    #: caller's into each of its requests; recycled after ``worker_max_turns`` turns.
    workers: bool = False
    worker_max_turns: int = 100
    _envs: dict[str, dict[str, str]] = field(init=False)

    def __post_init__(self) -> None:
        if self.account_envs is not None:
            self._envs = {name: dict(env) for name, env in self.account_envs.items()}
            return
        env = dict(self.base_env)
        if any(env.get(name) for name in ENV_LOGINS):
            env["CLAUDE_CONFIG_DIR"] = str(self.state_dir / "cli-config")
        self._envs = {"default": env}

    def replace_account_envs(self, account_envs: dict[str, dict[str, str]]) -> None:
        """Each account's environment after the accounts file changed (``engine``): later
        launches use it; a removed account cannot be launched any more."""
        self._envs = {name: dict(env) for name, env in account_envs.items()}
        self._make_private_dirs()

    def _make_private_dirs(self) -> None:
        """The CLI configuration directories that are the bridge's own (one per account whose
        login comes from a variable), private to this user."""
        for env in self._envs.values():
            private = self._private_dir(env)
            if private is not None:
                private.mkdir(exist_ok=True, mode=0o700)

    def env_of(self, account: str) -> dict[str, str]:
        """The environment an account's processes start from (before the profile's part)."""
        return dict(self._envs[account])

    @property
    def private_config(self) -> bool:
        """Whether the CLI runs with the bridge's own empty configuration directory."""
        return any(self._private_dir(env) is not None for env in self._envs.values())

    def _private_dir(self, env: dict[str, str]) -> Path | None:
        directory = env.get("CLAUDE_CONFIG_DIR")
        if directory and Path(directory).parent == self.state_dir and Path(directory).name.startswith("cli-config"):
            return Path(directory)
        return None

    def prepare(self) -> None:
        """Create the state directory (private), the CLI's configuration directories that are
        the bridge's own, and the shared empty working directory."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.state_dir.chmod(0o700)
        self._make_private_dirs()
        prepare_work_dir(self.work_dir)

    async def __call__(self, profile: Profile, history: tuple[Message, ...], spare: bool = False) -> CliProcess:
        """A new process for ``profile`` holding ``history``. ``spare``: launched by the pool
        ahead of demand (no request waits for it): only a spare runs the warm-up turn."""
        tap = self.tap
        if tap is None:
            return await self._start(profile, history, None)
        warm = spare and self.warm_spares and not history and _warmable(profile)
        worker = self.workers and not history
        if not (warm or worker):
            return await self._start(profile, history, tap.base_url(profile.account))
        process = await self._start_on_own_url(tap, profile, history, warm=warm, worker=worker)
        if not warm:
            return process
        try:
            await self._warm_up(process, tap.warmup_text)
        except Exception as exc:  # a spare unwarmed is still a spare: start a plain one instead
            if not process.alive:
                # It died (a CLI that exits at once): hand the dead process back, so the pool
                # sees the early death and backs off, instead of a second start right away.
                return process
            log.warning("warming a spare failed (%s); launching it without the warm-up", exc)
            await process.stop()
            if worker:
                return await self._start_on_own_url(tap, profile, history, warm=False, worker=True)
            return await self._start(profile, history, tap.base_url(profile.account))
        return process

    async def _start_on_own_url(
        self, tap: Tap, profile: Profile, history: tuple[Message, ...], *, warm: bool, worker: bool
    ) -> CliProcess:
        """A process whose requests reach the tap under a URL of its own (the warm-up, a worker's
        turns); the tap forgets the URL with the process."""
        url, token = tap.warm_url(profile.account, warm=warm, worker=worker)
        process = await self._start(profile, history, url)
        weakref.finalize(process, tap.forget, token)
        if worker:
            process.worker, process.tap_token, process.max_turns = True, token, self.worker_max_turns
        return process

    async def _start(self, profile: Profile, history: tuple[Message, ...], url: str | None) -> CliProcess:
        private = self.state_dir / f"p-{uuid.uuid4().hex[:16]}"
        try:
            argv, env = await asyncio.to_thread(self._write_files, private, profile, history)
            if url is not None:
                env.update(tap_env(env, url))
            return await CliProcess.start(
                argv, env, cwd=self.work_dir, private_dir=private, profile=profile, history=history
            )
        except BaseException:
            await asyncio.to_thread(shutil.rmtree, private, True)
            raise

    @staticmethod
    async def _warm_up(process: CliProcess, text: str) -> None:
        """Run the warm-up turn (answered by the tap, never forwarded) and leave the process
        holding no history as far as the bridge is concerned: the tap removes the exchange
        from every later request."""
        turn = process.turn(
            Message("user", (TextBlock(text),)),
            silence_timeout=WARMUP_TIMEOUT_SECONDS,
            turn_timeout=WARMUP_TIMEOUT_SECONDS,
        )
        async for _ in turn:
            pass
        if not process.reusable:
            raise RuntimeError("the warm-up turn did not complete")
        process.history = ()
        process.turns = 0  # the warm-up answered nobody: a spare has served no turn

    def _write_files(
        self, private: Path, profile: Profile, history: tuple[Message, ...]
    ) -> tuple[list[str], dict[str, str]]:
        """Everything the launch needs on disk (run in a thread: transcripts can be tens of MB)."""
        private.mkdir(mode=0o700)
        tmp = private / "tmp"
        tmp.mkdir(mode=0o700)
        env = profile.env(self._envs[profile.account], self.max_retries)
        env["TMPDIR"] = str(tmp)
        settings: dict[str, Any] = {"permissions": PERMISSIONS}
        files: dict[str, Path] = {}
        if profile.system is not None:
            files["system_prompt"] = private / "system-prompt.txt"
            files["system_prompt"].write_text(profile.system, encoding="utf-8")
        offered = profile.tools_json is not None and profile.tools_offered
        results = private / "results.json"
        if offered:
            assert profile.tools_json is not None
            files["mcp_config"] = write_config(private, profile.tools_json, results)
            settings.update(hook_settings(results))
        if history:
            files["transcript"] = private / "transcript.jsonl"
            messages = with_cli_names(list(history), profile.tool_names)
            if _ends_with_tool_results(messages):
                continuation = split_continuation(messages)
                results.write_text(json.dumps({continuation.marked.id: continuation.result}), encoding="utf-8")
                write_transcript(continuation.records(), files["transcript"], deferred=continuation.marked)
            else:
                write_transcript(messages, files["transcript"])
        files["settings"] = private / "settings.json"
        files["settings"].write_text(json.dumps(settings), encoding="utf-8")
        return build_argv(self.cli, profile, LaunchFiles(**files), self.fallback_model), env

    def cleanup(self) -> None:
        """Remove the state directory (at shutdown, after every process stopped)."""
        shutil.rmtree(self.state_dir, ignore_errors=True)


def _warmable(profile: Profile) -> bool:
    """Profiles whose first turn a plain text reply can stand for: not a structured-output
    one (the CLI insists on its StructuredOutput tool) nor a forced tool choice."""
    return profile.json_schema is None and profile.tool_choice_json is None


def _ends_with_tool_results(messages: list[Message]) -> bool:
    return bool(messages) and any(isinstance(block, ToolResultBlock) for block in messages[-1].content)


def tap_env(env: dict[str, str], url: str) -> dict[str, str]:
    """What points a CLI at the tap: ANTHROPIC_BASE_URL, and loopback kept off any proxy the
    environment names (the tap itself applies the proxy on the upstream side)."""
    out = {"ANTHROPIC_BASE_URL": url}
    for name in ("NO_PROXY", "no_proxy"):
        current = env.get(name, "")
        if name == "NO_PROXY" or current:
            hosts = [h for h in current.split(",") if h.strip()]
            out[name] = ",".join([*hosts, "127.0.0.1"]) if "127.0.0.1" not in hosts else current
    return out


def process_env() -> dict[str, str]:
    """The server's own environment (so ANTHROPIC_* and the login reach the CLI)."""
    return dict(os.environ)
