"""A minimal Anthropic Messages API on loopback, for the feature probes (``cli.probe``).

It answers each ``POST /v1/messages`` with a reply chosen by the probe (text, a tool call, or
an HTTP error) and records every request body, so a probe can check what the model would
have received. It never reaches the network and spends no quota.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    text: str = "ok"
    tool_uses: tuple[tuple[str, str, dict[str, Any]], ...] = ()  # (id, name, input) blocks after the text
    status: int = 200  # other than 200: an HTTP error with an Anthropic error body
    error_type: str = "api_error"


Script = Callable[[dict[str, Any]], Reply]


def _sse(body: dict[str, Any], reply: Reply) -> bytes:
    model = body.get("model", "probe")
    usage = {"input_tokens": 1, "output_tokens": 1}
    blocks: list[tuple[str, dict[str, Any]]] = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_probe", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}),
    ]  # fmt: skip
    index = 0
    if reply.text:
        blocks += [
            ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": reply.text}}),
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ]  # fmt: skip
        index = 1
    for tool_id, name, arguments in reply.tool_uses:
        blocks += [
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": tool_id, "name": name, "input": {}}}),
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": json.dumps(arguments)}}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]  # fmt: skip
        index += 1
    stop = "tool_use" if reply.tool_uses else "end_turn"
    blocks += [
        (
            "message_delta",
            {"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": None}, "usage": usage},
        ),
        ("message_stop", {"type": "message_stop"}),
    ]
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in blocks)


class StandIn:
    """``async with StandIn(script) as upstream``: serves on ``upstream.url``; ``received``
    holds every request body in arrival order."""

    def __init__(self, script: Script):
        self.script = script
        self.received: list[dict[str, Any]] = []
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> StandIn:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                status, kind, content = 200, "application/json", b"{}"
                if request_line.startswith("POST /v1/messages") and "count_tokens" not in request_line:
                    payload = json.loads(body or b"{}")
                    self.received.append(payload)
                    reply = self.script(payload)
                    if reply.status != 200:
                        status = reply.status
                        error = {"type": "error", "error": {"type": reply.error_type, "message": "probe error"}}
                        content = json.dumps(error).encode()
                    elif payload.get("stream"):
                        kind, content = "text/event-stream", _sse(payload, reply)
                    else:
                        content = json.dumps(_whole(payload, reply)).encode()
                head_only = request_line.startswith("HEAD ")  # (the CLI's HEAD /api/hello): no body
                writer.write(
                    f"HTTP/1.1 {status} X\r\nContent-Type: {kind}\r\nContent-Length: {len(content)}\r\n"
                    "x-should-retry: false\r\n\r\n".encode()
                    + (b"" if head_only else content)
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()


def _whole(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
    for tool_id, name, arguments in reply.tool_uses:
        content.append({"type": "tool_use", "id": tool_id, "name": name, "input": arguments})
    return {
        "id": "msg_probe", "type": "message", "role": "assistant", "model": body.get("model", "probe"),
        "content": content, "stop_reason": "tool_use" if reply.tool_uses else "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 1},
    }  # fmt: skip


def user_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    """(role, text) per user/assistant message, leaving out the CLI's <system-reminder> blocks."""
    out = []
    for message in body.get("messages", []):
        if message.get("role") not in ("user", "assistant"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append((message["role"], content))
            continue
        text = "".join(
            block.get("text", "")
            for block in content or []
            if block.get("type") == "text" and not block.get("text", "").startswith("<system-reminder>")
        )
        out.append((message["role"], text))
    return out
