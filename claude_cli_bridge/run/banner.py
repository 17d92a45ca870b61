"""The start-up banner: where the two APIs listen, whether a key is needed, the subscription's
windows as last seen, and settings to copy into each kind of client. Pure: text from settings.
"""

from __future__ import annotations

from ..settings import Settings

ANY_ADDRESS = {"0.0.0.0", "::", ""}


def local_host(settings: Settings) -> str:
    """The host to put in URLs for this machine (a wildcard bind is reached on loopback)."""
    if settings.host in ANY_ADDRESS:
        return "127.0.0.1"
    return f"[{settings.host}]" if ":" in settings.host else settings.host


def banner_lines(
    settings: Settings,
    version: str,
    cli_version: str,
    cli_path: str,
    windows: list[str] | None = None,
    *,
    in_container: bool = False,
) -> list[str]:
    """The banner's lines. ``in_container``: the URLs are the host's, through published ports."""
    host = local_host(settings)
    openai_base = f"http://{host}:{settings.port}/v1"
    ollama_base = f"http://{host}:{settings.ollama_port}" if settings.ollama_port else ""
    keys = settings.api_keys()
    key = "$BRIDGE_API_KEY" if keys else "unused"  # the openai SDK insists on some key
    lines = [
        f"claude-cli-bridge {version} · Claude CLI {cli_version} ({cli_path})",
        f"  OpenAI API   {openai_base}",
        f"  Ollama API   {ollama_base or 'off (OLLAMA_PORT=0)'}",
        "  API key      "
        + (
            f"required: send the key from BRIDGE_API_KEY ({len(keys)} key{'s' if len(keys) != 1 else ''}) as "
            "`Authorization: Bearer <key>`"
            if keys
            else "not required (bound to loopback; set BRIDGE_API_KEY before exposing the port)"
        ),
        f"  Dashboard    http://{host}:{settings.port}/dashboard   Metrics http://{host}:{settings.port}/metrics",
    ]
    if settings.host in ANY_ADDRESS and in_container:
        lines.append(
            "  In a container: these URLs are the host's where the ports are published "
            f"(-p 127.0.0.1:{settings.port}:{settings.port}, docs/container.md)."
        )
    elif settings.host in ANY_ADDRESS:
        lines.append(f"  Listening on every interface ({settings.host or '*'}); other machines use this one's address.")
    if windows:
        lines.append("  Subscription " + windows[0])
        lines += [f"               {line}" for line in windows[1:]]
    lines += [
        "",
        "Client settings:",
        f'  openai SDK     OpenAI(base_url="{openai_base}", api_key="{key}")',
        f"  Cline/Continue provider OpenAI Compatible, base URL {openai_base}, API key {key}, model sonnet",
        "  Cursor         Cursor calls from its own servers, not from your machine: expose the port with a tunnel",
        f"                 (cloudflared tunnel --url http://127.0.0.1:{settings.port}), set BRIDGE_API_KEY, then in",
        "                 Cursor override the OpenAI base URL with https://<tunnel host>/v1 and use the key.",
    ]
    if ollama_base:
        docker = ollama_base.replace(host, "host.docker.internal", 1)
        header = ', headers={"Authorization": "Bearer $BRIDGE_API_KEY"}' if keys else ""
        lines += [
            f"  Open WebUI     OLLAMA_BASE_URL={ollama_base} (in Docker: {docker})"
            + (", with the key as the connection's Bearer key" if keys else ""),
            f'  ollama SDK     ollama.Client(host="{ollama_base}"{header})',
        ]
    return lines
