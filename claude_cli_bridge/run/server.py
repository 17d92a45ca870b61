"""Running the app: one process, one event loop, two listeners (OpenAI and Ollama ports)."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn

from .. import __version__, tap
from ..accounts import config as accounts_config
from ..accounts.book import AccountBook
from ..accounts.windows import SubscriptionWindows
from ..api.app import create_app
from ..api.drain import Drain
from ..cli.launch import WorkDirUnusable, prepare_work_dir
from ..cli.locate import CliMissing, cli_version, find_cli, shadowed_bundle
from ..cli.probe import ProbeReport, run_probes
from ..cli.version import check_range, dotted, parse_version
from ..embeddings.engine import EmbeddingEngine
from ..engine.bridge import BridgeEngine
from ..observe.requestlog import configure_logging
from ..settings import Settings
from .banner import banner_lines

log = logging.getLogger("claude_cli_bridge")


class StartupError(RuntimeError):
    """A problem that stops the server from starting; the message says how to fix it."""


def check_binding(settings: Settings, file_keys: int = 0) -> None:
    """Refuse a non-loopback address without keys (BRIDGE_API_KEY or ``file_keys`` keys of the
    accounts file) unless explicitly allowed."""
    if settings.api_keys() or file_keys or settings.allow_public_bind:
        return
    host = settings.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise StartupError(
            f"Refusing to bind {host} without keys: anyone who can reach the port could use "
            "your Claude subscription. Set BRIDGE_API_KEY, bind 127.0.0.1, or set ALLOW_PUBLIC_BIND=true."
        )


def bind(host: str, port: int, setting: str = "PORT", what: str = "OpenAI") -> socket.socket:
    """A listening socket; StartupError with one line naming the port and the setting to change."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY on accepted connections only for sockets
    # made with it, and without it a response's first chunk can wait ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        flag = "--" + setting.lower().replace("_", "-")
        if exc.errno == errno.EADDRINUSE:
            raise StartupError(
                f"port {port} on {host} is already in use (the {what} listener): set {setting} (or {flag}) to a "
                "free port, or stop the program using it."
            ) from None
        raise StartupError(
            f"cannot listen on {host}:{port} (the {what} listener): {exc.strerror}; set {setting} (or {flag}) "
            "or HOST (--host)."
        ) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def find_checked_cli(settings: Settings) -> tuple[str, str]:
    """The CLI's path and version; raises StartupError outside the supported range."""
    try:
        path = find_cli(settings.claude_cli_path)
    except CliMissing as exc:
        raise StartupError(str(exc)) from None
    raw = cli_version(path)
    verdict = check_range(parse_version(raw), raw)
    if verdict.verdict == "too_old":
        raise StartupError(f"{verdict.message} (CLI at {path})")
    if verdict.verdict == "newer":
        log.warning("%s", verdict.message)
    version = dotted(parse_version(raw) or (0, 0, 0))
    if not settings.claude_cli_path:
        note = shadowed_bundle(path, version)
        if note:
            log.warning("%s", note)
    return path, version


def probe_cli(settings: Settings, path: str, version: str) -> ProbeReport:
    """Run the feature probes (or trust the version when PROBE_FEATURES is off); raises
    StartupError when the CLI cannot serve safely at all."""
    if not settings.probe_features:
        return ProbeReport.unprobed(version)
    prepare_work_dir(settings.cli_work_dir)
    report = asyncio.run(run_probes(path, version, settings.cli_work_dir))
    fatal = report.fatal()
    if fatal:
        raise StartupError(f"Refusing to serve: {fatal}.")
    for name in report.failed():
        log.warning("feature switched off: %s", report.refusal(name))
    return report


def run(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    try:
        accounts = accounts_config.from_settings(settings.accounts_file)
        check_binding(settings, len(accounts.keys))
        # Ports first: a port in use is the commonest start-up failure, and says so in one line.
        sockets = [bind(settings.host, settings.port)]
        if settings.ollama_port:
            sockets.append(bind(settings.host, settings.ollama_port, "OLLAMA_PORT", "Ollama"))
        prepare_work_dir(settings.cli_work_dir)
        path, version = find_checked_cli(settings)
        log.info("using the Claude CLI %s at %s", version, path)
        features = probe_cli(settings, path, version)
        try:
            tap.check_environment(settings, os.environ)
        except ValueError as exc:
            raise StartupError(f"The upstream tap cannot start: {exc}.") from None
    except (StartupError, WorkDirUnusable, accounts_config.AccountsFileError) as exc:
        print(f"claude-cli-bridge: {exc}", file=sys.stderr)
        return 2
    book = AccountBook(accounts, settings.data_dir)
    engine = BridgeEngine(settings, path, version, features=features, book=book)
    windows = book.windows(accounts.names[0])
    app = create_app(settings, engine, EmbeddingEngine(settings), accounts=accounts)
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        log_config=None,  # configure_logging's handlers (text or JSON) serve uvicorn too
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or 1,
        access_log=settings.log_level.lower() == "debug" and settings.log_content,  # URLs carry caller ids
    )
    show_banner(settings, version, path, windows)
    DrainingServer(config, app.state.drain, settings.shutdown_grace_seconds).run(sockets=sockets)
    return 0


class DrainingServer(uvicorn.Server):
    """uvicorn, draining first on SIGTERM (``drain.py``): the listeners stay open so /health
    can say 503 ``draining`` and new turns get a 503 a router retries elsewhere, while the
    turns in flight finish; once none is left, or after ``grace`` seconds, uvicorn's own
    shutdown runs (which then stops the CLIs). A second signal, or Ctrl-C, is uvicorn's."""

    def __init__(self, config: uvicorn.Config, drain: Drain, grace: float):
        super().__init__(config)
        self.drain = drain
        self.grace = grace

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and not self.drain.draining and not self.should_exit:
            captured = getattr(self, "_captured_signals", None)  # uvicorn >= 0.29 re-raises them after shutdown
            if captured is not None:
                captured.append(sig)
            self.drain.begin()
            log.info("SIGTERM: draining (%d requests in flight); new turns are refused", self.drain.in_flight)
            return
        super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self.drain.draining and not self.should_exit:
            if self.drain.in_flight == 0:
                self.should_exit = True
            elif self.drain.elapsed() >= self.grace:
                log.warning("drain: %d requests still running after %.0f s", self.drain.in_flight, self.grace)
                self.config.timeout_graceful_shutdown = 1  # the grace is spent; don't wait as long again
                self.should_exit = True
        return await super().on_tick(counter)


def in_container() -> bool:
    """Whether this process runs in a container (podman writes /run/.containerenv, Docker
    /.dockerenv)."""
    return Path("/run/.containerenv").exists() or Path("/.dockerenv").exists()


def show_banner(settings: Settings, cli_version: str, cli_path: str, windows: SubscriptionWindows) -> None:
    """The banner on stderr; with LOG_FORMAT=json one log line instead (stderr stays JSON)."""
    lines = banner_lines(settings, __version__, cli_version, cli_path, windows.describe(), in_container=in_container())
    if settings.log_format == "json":
        log.info("%s", " | ".join(line.strip() for line in lines if line.strip()))
        return
    print("\n".join(lines) + "\n", file=sys.stderr, flush=True)
