"""Images from both SDKs reach the model byte for byte. Real CLI, fake upstream."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

import httpx
import ollama
import openai
import pytest

from claude_cli_bridge.api.image_urls import fetch_as_data_url
from claude_cli_bridge.errors import InvalidRequest

pytestmark = pytest.mark.e2e


def png_bytes(width: int = 4, height: int = 3, rgb=(200, 30, 90)) -> bytes:
    """A real, decodable PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


GIF = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"


def image_blocks(call) -> list[dict]:
    return [
        block
        for message in call.messages
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "image"
    ]


def test_an_openai_data_url_reaches_the_model_byte_for_byte(bridge, fake):
    data = base64.b64encode(png_bytes()).decode()
    client = openai.OpenAI(base_url=bridge.openai_url, api_key="x", max_retries=0)
    client.chat.completions.create(
        model="sonnet",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What colour is this?"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}", "detail": "high"}},
                ],
            }
        ],
    )
    [image] = image_blocks(fake.received[-1])
    assert image["source"] == {"type": "base64", "media_type": "image/png", "data": data}


def test_ollama_images_reach_the_model_with_the_media_type_from_the_bytes(bridge, fake):
    data = base64.b64encode(GIF).decode()
    client = ollama.Client(host=bridge.ollama_url)
    client.chat(model="sonnet", messages=[{"role": "user", "content": "Describe", "images": [data]}], stream=False)
    [image] = image_blocks(fake.received[-1])
    assert image["source"]["media_type"] == "image/gif" and image["source"]["data"] == data


def test_ollama_generate_images_reach_the_model(bridge, fake):
    data = base64.b64encode(png_bytes(2, 2)).decode()
    ollama.Client(host=bridge.ollama_url).generate(model="sonnet", prompt="What is it?", images=[data], stream=False)
    [image] = image_blocks(fake.received[-1])
    assert image["source"]["data"] == data


def test_images_in_earlier_turns_reach_the_model_through_the_transcript(bridge, fake):
    data = base64.b64encode(png_bytes(5, 5)).decode()
    client = openai.OpenAI(base_url=bridge.openai_url, api_key="x", max_retries=0)
    client.chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]},
            {"role": "assistant", "content": "A small square."},
            {"role": "user", "content": "What colour was it?"},
        ],
    )
    [image] = image_blocks(fake.received[-1])
    assert image["source"]["data"] == data
    assert fake.received[-1].plain_messages()[1:] == [("assistant", "A small square."), ("user", "What colour was it?")]


def test_the_url_fetcher_downloads_checks_and_bounds_images(fake):
    import asyncio

    # The fake upstream serves "{}" for any GET: not an image.
    async def scenario():
        with pytest.raises(InvalidRequest, match="did not return"):
            await fetch_as_data_url(f"{fake.base_url}/x.png", max_bytes=1000, timeout=5, where="m", allow_private=True)
        with pytest.raises(InvalidRequest, match="private"):
            await fetch_as_data_url(f"{fake.base_url}/x.png", max_bytes=1000, timeout=5, where="m")

    asyncio.run(scenario())


def test_models_say_they_support_vision(bridge):
    show = httpx.post(f"{bridge.ollama_url}/api/show", json={"model": "sonnet"}, timeout=10).json()
    assert "vision" in show["capabilities"]
    models = httpx.get(f"{bridge.openai_url}/models", timeout=10).json()["data"]
    assert all(m["capabilities"]["vision"] for m in models if m["owned_by"] == "anthropic")


def test_no_image_files_are_left_behind(start_bridge, fake):
    server = start_bridge(SPARE_PROFILES="0")
    data = base64.b64encode(png_bytes()).decode()
    openai.OpenAI(base_url=server.openai_url, api_key="x", max_retries=0).chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "user", "content": [{"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}]}
        ],
    )
    server.stop()
    leftovers = [p for p in Path(server.env["STATE_DIR"]).rglob("*") if p.is_file()]
    assert leftovers == []
