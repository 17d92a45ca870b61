"""Running the app: one process, one event loop, two listeners (OpenAI and Ollama ports)."""

from __future__ import annotations

import ipaddress
import logging
import socket
import sys

import uvicorn

from .app import create_app
from .cli.locate import CliMissing, cli_version, find_cli
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


def build_engine(settings: Settings) -> BridgeEngine:
    try:
        cli = find_cli(settings.claude_cli_path)
    except CliMissing as exc:
        raise StartupError(str(exc)) from None
    version = cli_version(cli)
    if not version:
        raise StartupError(f"The Claude CLI at {cli} did not report a version; is it a working install?")
    log.info("using the Claude CLI %s at %s", version, cli)
    return BridgeEngine(settings, cli, version)




def run(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    try:
        check_binding(settings)
        engine = build_engine(settings)
        sockets = [bind(settings.host, settings.port)]
        if settings.ollama_port:
            sockets.append(bind(settings.host, settings.ollama_port))
    except StartupError as exc:
        print(f"claude-cli-bridge: {exc}", file=sys.stderr)
        return 2
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
