"""The transcript compatibility probe: does this CLI still replay a written transcript as
real turns?

It resumes a tiny transcript against an in-process loopback stand-in for the Messages API
and checks that the stand-in received user/assistant/user with the exact texts. If not,
the engine falls back to flattened history (logged loudly, documented in the README).
Run at start-up (``PROBE_TRANSCRIPTS``) and by ``python -m claude_cli_bridge doctor``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .cli.profile import Profile, process_env
from .cli.wire import write_transcript
from .core.messages import Message, TextBlock

QUESTION, ANSWER, FOLLOW_UP = "probe: first question", "probe: first answer", "probe: follow-up"


@dataclass
class ProbeResult:
    ok: bool
    detail: str
    received: list = field(default_factory=list)


def _sse_reply(model: str) -> bytes:
    events = [
        ("message_start", {"type": "message_start", "message": {"id": "msg_probe", "type": "message", "role": "assistant", "model": model, "content": [], "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "ok"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None}, "usage": {"output_tokens": 1}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip
    return b"".join(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode() for name, data in events)


class _StandIn:
    """A minimal HTTP/1.1 Messages API on loopback that records the requests' messages."""

    def __init__(self) -> None:
        self.received: list[list[dict]] = []
        self.server: asyncio.base_events.Server | None = None

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
                if request_line.startswith("POST /v1/messages") and "count_tokens" not in request_line:
                    payload = json.loads(body or b"{}")
                    self.received.append(payload.get("messages", []))
                    content, kind = _sse_reply(payload.get("model", "probe")), "text/event-stream"
                else:
                    content, kind = b"{}", "application/json"
                writer.write(
                    f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(content)}\r\n\r\n".encode()
                    + content
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


def _texts(messages: list[dict]) -> list[tuple[str, str]]:
    out = []
    for message in messages:
        if message.get("role") not in ("user", "assistant"):
            continue
        content = message.get("content")
        if isinstance(content, str):
            text = content
        else:
            text = "".join(
                b.get("text", "")
                for b in content or []
                if b.get("type") == "text" and not b.get("text", "").startswith("<system-reminder>")
            )
        out.append((message["role"], text))
    return out


async def run_probe(cli: str, timeout: float = 60.0) -> ProbeResult:
    stand_in = _StandIn()
    port = await stand_in.start()
    workdir = Path(tempfile.mkdtemp(prefix="claude-bridge-probe-"))
    transcript = workdir / "probe.jsonl"
    write_transcript([Message("user", (TextBlock(QUESTION),)), Message("assistant", (TextBlock(ANSWER),))], transcript)
    env = Profile(model="haiku").env(process_env(), max_retries=0)
    env.update(ANTHROPIC_BASE_URL=f"http://127.0.0.1:{port}", ANTHROPIC_API_KEY="probe-key")
    env.pop("ANTHROPIC_AUTH_TOKEN", None)
    argv = [
        cli, "-p", FOLLOW_UP, "--output-format", "stream-json", "--verbose", "--tools", "",
        "--setting-sources", "", "--strict-mcp-config", "--disable-slash-commands", "--model", "haiku",
        "--resume", str(transcript), "--fork-session", "--no-session-persistence",
    ]  # fmt: skip
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=str(workdir),
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            process.kill()
            await process.wait()
            return ProbeResult(False, f"the CLI did not finish within {timeout:.0f} s")
    finally:
        stand_in.close()
        with contextlib.suppress(OSError):
            transcript.unlink()
        with contextlib.suppress(OSError):
            workdir.rmdir()
    if not stand_in.received:
        tail = (stderr or stdout).decode(errors="replace").strip()[-300:]
        return ProbeResult(False, f"the CLI made no model request (exit {process.returncode}): {tail}")
    seen = _texts(stand_in.received[-1])
    expected = [("user", QUESTION), ("assistant", ANSWER), ("user", FOLLOW_UP)]
    if seen != expected:
        return ProbeResult(False, f"the model would have seen {seen!r} instead of {expected!r}", seen)
    return ProbeResult(True, "transcripts resume as real turns", seen)
