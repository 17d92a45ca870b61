"""The start-up banner's text, from settings alone."""

from __future__ import annotations

import pytest

from claude_cli_bridge.run.banner import banner_lines
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.unit


def text(**settings) -> str:
    return "\n".join(
        banner_lines(Settings(_env_file=None, **settings), "1.0", "2.1.332", "/bin/claude", ["5-hour: 42% used"])
    )


def test_a_key_is_named_as_required_and_put_in_every_client_setting():
    banner = text(bridge_api_key="a,b", host="0.0.0.0", port=9000, ollama_port=9001)
    assert "required: send the key from BRIDGE_API_KEY (2 keys)" in banner
    assert 'OpenAI(base_url="http://127.0.0.1:9000/v1", api_key="$BRIDGE_API_KEY")' in banner
    assert 'ollama.Client(host="http://127.0.0.1:9001", headers={"Authorization": "Bearer $BRIDGE_API_KEY"})' in banner
    assert "Listening on every interface" in banner
    assert "OLLAMA_BASE_URL=http://127.0.0.1:9001 (in Docker: http://host.docker.internal:9001)" in banner
    assert "Subscription 5-hour: 42% used" in banner


def test_in_a_container_the_urls_are_the_hosts_through_published_ports():
    lines = banner_lines(Settings(_env_file=None, host="0.0.0.0", port=8000), "1.0", "2", "/c", in_container=True)
    banner = "\n".join(lines)
    assert "In a container" in banner and "-p 127.0.0.1:8000:8000" in banner
    assert "Listening on every interface" not in banner


def test_no_key_and_no_ollama_port():
    banner = text(ollama_port=0)
    assert "not required" in banner and "off (OLLAMA_PORT=0)" in banner
    assert "ollama SDK" not in banner and 'api_key="unused"' in banner
