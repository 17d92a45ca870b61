"""Running the app: one process, one event loop, two listeners (OpenAI and Ollama ports)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys

import uvicorn

from .app import create_app
from .cli.launch import WorkDirUnusable, prepare_work_dir
from .cli.locate import CliMissing, cli_version, find_cli, shadowed_bundle
from .cli.probe import ProbeReport, run_probes
from .cli.version import check_range, dotted, parse_version
from .embeddings import EmbeddingEngine
from .engine import BridgeEngine
from .settings import Settings

log = logging.getLogger("claude_cli_bridge")


class StartupError(RuntimeError):
    """A problem that stops the server from starting; the message says how to fix it."""


def check_binding(settings: Settings) -> None:
    """Refuse a non-loopback address without keys unless explicitly allowed."""
    if settings.api_keys() or settings.allow_public_bind:
        return
    host = settings.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise StartupError(
            f"Refusing to bind {host} without BRIDGE_API_KEY: anyone who can reach the port could use "
            "your Claude subscription. Set BRIDGE_API_KEY, bind 127.0.0.1, or set ALLOW_PUBLIC_BIND=true."
        )


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise StartupError(f"Cannot listen on {host}:{port}: {exc.strerror}.") from None
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
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        check_binding(settings)
        prepare_work_dir(settings.cli_work_dir)
        path, version = find_checked_cli(settings)
        log.info("using the Claude CLI %s at %s", version, path)
        sockets = [bind(settings.host, settings.port)]
        if settings.ollama_port:
            sockets.append(bind(settings.host, settings.ollama_port))
        features = probe_cli(settings, path, version)
    except (StartupError, WorkDirUnusable) as exc:
        print(f"claude-cli-bridge: {exc}", file=sys.stderr)
        return 2
    engine = BridgeEngine(settings, path, version, features=features)
    app = create_app(settings, engine, EmbeddingEngine(settings))
    config = uvicorn.Config(
        app,
        log_level=settings.log_level.lower(),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) or 1,
        access_log=settings.log_level.lower() == "debug",
    )
    ports = ", ".join(str(s.getsockname()[1]) for s in sockets)
    log.info("listening on %s ports %s (OpenAI at /v1, Ollama at /api)", settings.host, ports)
    uvicorn.Server(config).run(sockets=sockets)
    return 0
