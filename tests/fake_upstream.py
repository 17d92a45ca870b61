"""A fake Anthropic Messages API on loopback: the only stand-in the tests use.

The real `claude` CLI is pointed at it with ``ANTHROPIC_BASE_URL`` and ``ANTHROPIC_API_KEY``.
It streams scripted replies (with delays between events), answers HTTP errors on demand,
emits tool_use blocks, and records every request it received, plus whether the client
dropped a stream before it finished, so tests can assert what reached the model.

Replies are taken from a FIFO queue (``fake.enqueue(Reply(...))``); when it is empty the
default reply is used. Tests run serially, so one queue per server is enough.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route


@dataclass
class ToolUse:
    """A tool_use block the fake model emits."""

    name: str
    input: dict[str, Any]
    id: str = field(default_factory=lambda: "toolu_" + uuid.uuid4().hex[:20])


@dataclass
class Reply:
    """One scripted answer.

    ``chunks`` are streamed as separate text deltas, ``delay`` seconds apart. ``status``
    other than 200 answers an HTTP error with an Anthropic error body instead. ``hang_after``
    stops streaming after that many chunks and waits (for disconnect tests); ``die_after``
    cuts the connection after that many chunks. ``first_delay`` waits that long before the
    first event (message_start): a slow first token, nothing for the client yet.
    """

    chunks: list[str] = field(default_factory=lambda: ["Hello", " from", " the", " fake."])
    delay: float = 0.0
    tool_uses: list[ToolUse] = field(default_factory=list)
    stop_reason: str | None = None
    input_tokens: int = 11
    output_tokens: int | None = None
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    status: int = 200
    error_type: str = "api_error"
    error_message: str = "scripted failure"
    error_details: dict[str, Any] | None = None  # the error's ``details`` (e.g. ``error_code``)
    retry_after: str | None = None
    hang_after: int | None = None
    die_after: int | None = None
    #: Streamed as one thinking block (thinking_delta events, then a signature_delta) before
    #: the text; empty: no thinking block.
    thinking: list[str] = field(default_factory=list)
    signature: str = "fake-signature-0123456789"
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers (rate limits)
    first_delay: float = 0.0

    @property
    def text(self) -> str:
        return "".join(self.chunks)


@dataclass
class RawRequest:
    """Any request exactly as it arrived: method, path, query, header pairs, body bytes."""

    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass
class Received:
    """What one POST /v1/messages carried, and how its stream ended."""

    body: dict[str, Any]
    headers: dict[str, str]
    started: float
    finished: bool = False
    disconnected: bool = False
    ended_at: float | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    @property
    def token(self) -> str:
        """The login the request came with: the OAuth bearer token or the API key."""
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else self.headers.get("x-api-key", "")

    @property
    def effort(self) -> str | None:
        """``output_config.effort`` of the request (what ``--effort`` sets), if any."""
        return (self.body.get("output_config") or {}).get("effort")

    @property
    def system_text(self) -> str:
        system = self.body.get("system") or []
        if isinstance(system, str):
            return system
        return "\n".join(block.get("text", "") for block in system)

    def plain_messages(self) -> list[tuple[str, str]]:
        """(role, text) per user/assistant message; the CLI's injected ``system``-role
        messages and <system-reminder> blocks are left out."""
        out = []
        for message in self.messages:
            if message["role"] not in ("user", "assistant"):
                continue
            content = message["content"]
            if isinstance(content, str):
                out.append((message["role"], content))
                continue
            texts = [
                block.get("text", "")
                for block in content
                if block.get("type") == "text" and not block.get("text", "").startswith("<system-reminder>")
            ]
            out.append((message["role"], "".join(texts)))
        return out


CLIENT_PREFIX = "mcp__client__"


def offered_name(body: dict[str, Any], name: str) -> str:
    """The name a scripted tool call takes in the request's own terms: the bridge offers the
    caller's tools as ``mcp__client__NAME`` on the transcript path (an MCP server) and under
    the caller's own ``NAME`` on workers (the tap). A script may name either; the model calls
    the tool as the request offered it (a name the request does not offer stays as written)."""
    names = {tool.get("name") for tool in body.get("tools") or [] if isinstance(tool, dict)}
    bare = name.removeprefix(CLIENT_PREFIX)
    for candidate in (name, bare, CLIENT_PREFIX + bare):
        if candidate in names:
            return candidate
    return name


def tool_results(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The tool_result blocks of a request body's user messages, in order."""
    return [
        block
        for message in body["messages"]
        if message["role"] == "user" and isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]


def weather_model(body: dict[str, Any], preamble: str | None = "Let me check.") -> Reply:
    """A handler that calls the client's ``get_weather`` tool (after ``preamble``, if any)
    until the request carries its result, then answers from that result."""
    results = tool_results(body)
    if not results:
        return Reply(
            chunks=[preamble] if preamble else [], tool_uses=[ToolUse("mcp__client__get_weather", {"city": "Oslo"})]
        )
    return Reply(chunks=["It is ", json.dumps(results[-1]["content"])])


def unified_headers(
    status: str = "allowed",
    *,
    five_hour: tuple[float, int] | None = None,
    seven_day: tuple[float, int] | None = None,
    overage: tuple[float, int] | None = None,
    claim: str = "five_hour",
    window_status: dict[str, str] | None = None,
) -> dict[str, str]:
    """The ``anthropic-ratelimit-unified-*`` headers a subscription's responses carry:
    the overall ``status`` and, per window, (utilization 0..1, reset as epoch seconds).
    ``claim`` names the window that limits (the one a rejection is about)."""
    headers = {"anthropic-ratelimit-unified-status": status, "anthropic-ratelimit-unified-representative-claim": claim}
    windows = {"5h": five_hour, "7d": seven_day, "overage": overage}
    claimed = {"five_hour": "5h", "seven_day": "7d", "overage": "overage"}.get(claim)
    for short, value in windows.items():
        if value is None:
            continue
        utilization, reset = value
        headers[f"anthropic-ratelimit-unified-{short}-utilization"] = str(utilization)
        headers[f"anthropic-ratelimit-unified-{short}-reset"] = str(reset)
        state = (window_status or {}).get(short)
        if state:
            headers[f"anthropic-ratelimit-unified-{short}-status"] = state
        if short == claimed:
            headers["anthropic-ratelimit-unified-reset"] = str(reset)
    return headers


@dataclass
class RisingWindow:
    """A 5-hour window whose utilization rises by ``step`` with each answer; ``readings``
    says what was sent."""

    start: float
    step: float
    resets_at: int
    readings: list[float] = field(default_factory=list)

    def next_headers(self) -> dict[str, str]:
        utilization = round(self.start + self.step * len(self.readings), 4)
        self.readings.append(utilization)
        return unified_headers(five_hour=(utilization, self.resets_at))


def structured_reply(body: dict[str, Any], value: dict[str, Any]) -> Reply | None:
    """What the fake model says to a ``--json-schema`` turn: the CLI offers a StructuredOutput
    tool (input_schema = the schema) and ends the turn once it is called."""
    if any(tool.get("name") == "StructuredOutput" for tool in body.get("tools", [])):
        return Reply(chunks=[], tool_uses=[ToolUse("StructuredOutput", value)])
    return None


def _sse(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


class FakeAnthropic:
    """The fake upstream; start() runs it in a daemon thread on a free loopback port."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.raw: list[RawRequest] = []  # every request on every path, byte for byte
        #: Answers for paths other than /v1/messages: path -> (status, headers, body).
        self.other_replies: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self._queue: list[Reply] = []
        # Replies for one login only (accounts: each account's token), before the common queue.
        self._by_token: dict[str, list[Reply]] = {}
        self._lock = threading.Lock()
        self.default_reply = Reply()
        self.handler: Callable[[dict[str, Any]], Reply | None] | None = None
        #: A subscription whose 5-hour utilization rises with every answer (``rising_window``).
        self._rising: RisingWindow | None = None
        self.port = 0
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.app = Starlette(
            routes=[
                Route("/v1/messages", self._messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self._count_tokens, methods=["POST"]),
                Route("/{path:path}", self._other, methods=["GET", "POST", "HEAD", "PUT", "PATCH", "DELETE"]),
            ]
        )

    # -- scripting -----------------------------------------------------------------
    def enqueue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def enqueue_for(self, token: str, *replies: Reply) -> None:
        """Replies for requests made with this login (Bearer token or API key) only."""
        with self._lock:
            self._by_token.setdefault(token, []).extend(replies)

    def rising_window(self, start: float, step: float, resets_at: int) -> RisingWindow:
        """From now on every 200 answer of /v1/messages carries the unified headers of a
        5-hour window used ``start``, then ``step`` more with each answer (``resets_at``
        epoch seconds); ``reset()`` ends it."""
        with self._lock:
            self._rising = RisingWindow(start, step, resets_at)
            return self._rising

    def reset(self) -> None:
        with self._lock:
            self._rising = None
            self._queue.clear()
            self._by_token.clear()
            self.received.clear()
            self.raw.clear()
            self.other_replies.clear()
            self.handler = None

    def model_calls(self) -> list[Received]:
        """Requests that asked the model for an answer (not the CLI's side calls)."""
        with self._lock:
            return list(self.received)

    def wait_for_calls(self, n: int, timeout: float = 10.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            calls = self.model_calls()
            if len(calls) >= n:
                return calls
            time.sleep(0.02)
        raise AssertionError(f"expected {n} upstream calls, got {len(self.model_calls())}")

    def _next_reply(self, body: dict[str, Any], token: str = "") -> Reply:
        with self._lock:
            if self._by_token.get(token):
                return self._by_token[token].pop(0)
            if self.handler is not None:
                reply = self.handler(body)
                if reply is not None:
                    return reply
            if self._queue:
                return self._queue.pop(0)
            return self.default_reply

    # -- routes -------------------------------------------------------------------
    async def _record_raw(self, request: Request) -> bytes:
        body = await request.body()
        raw = RawRequest(request.method, request.url.path, request.scope["query_string"], request.headers.raw, body)
        with self._lock:
            self.raw.append(raw)
        return body

    async def _other(self, request: Request) -> Response:
        await self._record_raw(request)
        if request.url.path in self.other_replies:
            status, headers, content = self.other_replies[request.url.path]
            return Response(content, status_code=status, headers=headers)
        return JSONResponse({})

    async def _count_tokens(self, request: Request) -> Response:
        await self._record_raw(request)
        return JSONResponse({"input_tokens": 11})

    async def _messages(self, request: Request) -> Response:
        body = json.loads(await self._record_raw(request))
        record = Received(body=body, headers=dict(request.headers), started=time.monotonic())
        with self._lock:
            self.received.append(record)
        reply = self._next_reply(body, record.token)
        if reply.status != 200:
            record.finished = True
            headers = {"retry-after": reply.retry_after} if reply.retry_after else {}
            headers.update(reply.headers)
            error: dict[str, Any] = {"type": reply.error_type, "message": reply.error_message}
            if reply.error_details is not None:
                error["details"] = reply.error_details
            return JSONResponse(
                {"type": "error", "error": error},
                status_code=reply.status,
                headers=headers,
            )
        headers = dict(reply.headers)
        with self._lock:
            if self._rising is not None:
                headers.update(self._rising.next_headers())
        if not body.get("stream"):
            record.finished = True
            return JSONResponse(self._whole_message(body, reply), headers=headers)
        return StreamingResponse(self._stream(body, reply, record), media_type="text/event-stream", headers=headers)

    def _usage(self, reply: Reply) -> dict[str, int]:
        return {
            "input_tokens": reply.input_tokens,
            "cache_read_input_tokens": reply.cache_read_input_tokens,
            "cache_creation_input_tokens": reply.cache_creation_input_tokens,
            "output_tokens": reply.output_tokens if reply.output_tokens is not None else len(reply.chunks),
        }

    def _stop_reason(self, reply: Reply) -> str:
        if reply.stop_reason:
            return reply.stop_reason
        return "tool_use" if reply.tool_uses else "end_turn"

    def _whole_message(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        content: list[dict[str, Any]] = []
        if reply.thinking:
            content.append({"type": "thinking", "thinking": "".join(reply.thinking), "signature": reply.signature})
        if reply.text:
            content.append({"type": "text", "text": reply.text})
        for tool in reply.tool_uses:
            content.append(
                {"type": "tool_use", "id": tool.id, "name": offered_name(body, tool.name), "input": tool.input}
            )
        return {
            "id": "msg_" + uuid.uuid4().hex[:20],
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "claude-fake"),
            "content": content,
            "stop_reason": self._stop_reason(reply),
            "stop_sequence": None,
            "usage": self._usage(reply),
        }

    async def _stream(self, body: dict[str, Any], reply: Reply, record: Received):
        usage = self._usage(reply)
        try:
            if reply.first_delay:
                await asyncio.sleep(reply.first_delay)
            start_usage = dict(usage, output_tokens=1)
            yield _sse(
                "message_start",
                {
                    "type": "message_start",
                    "message": {
                        "id": "msg_" + uuid.uuid4().hex[:20],
                        "type": "message",
                        "role": "assistant",
                        "model": body.get("model", "claude-fake"),
                        "content": [],
                        "stop_reason": None,
                        "stop_sequence": None,
                        "usage": start_usage,
                    },
                },
            )
            index = 0
            if reply.thinking:
                yield _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": 0,
                        "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                    },
                )
                for part in reply.thinking:
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    yield _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": 0,
                            "delta": {"type": "thinking_delta", "thinking": part},
                        },
                    )
                yield _sse(
                    "content_block_delta",
                    {
                        "type": "content_block_delta",
                        "index": 0,
                        "delta": {"type": "signature_delta", "signature": reply.signature},
                    },
                )
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": 0})
                index = 1
            if reply.chunks:
                yield _sse(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
                )
                for n, chunk in enumerate(reply.chunks):
                    if reply.hang_after is not None and n >= reply.hang_after:
                        await asyncio.sleep(3600)
                    if reply.die_after is not None and n >= reply.die_after:
                        raise ConnectionAbortedError("scripted upstream death")
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    yield _sse(
                        "content_block_delta",
                        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}},
                    )
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            for tool in reply.tool_uses:
                yield _sse(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {
                            "type": "tool_use",
                            "id": tool.id,
                            "name": offered_name(body, tool.name),
                            "input": {},
                        },
                    },
                )
                arguments = json.dumps(tool.input)
                half = len(arguments) // 2
                for part in (arguments[:half], arguments[half:]):
                    if reply.delay:
                        await asyncio.sleep(reply.delay)
                    yield _sse(
                        "content_block_delta",
                        {
                            "type": "content_block_delta",
                            "index": index,
                            "delta": {"type": "input_json_delta", "partial_json": part},
                        },
                    )
                yield _sse("content_block_stop", {"type": "content_block_stop", "index": index})
                index += 1
            yield _sse(
                "message_delta",
                {
                    "type": "message_delta",
                    "delta": {"stop_reason": self._stop_reason(reply), "stop_sequence": None},
                    "usage": {"output_tokens": usage["output_tokens"]},
                },
            )
            yield _sse("message_stop", {"type": "message_stop"})
            record.finished = True
        except (asyncio.CancelledError, GeneratorExit):
            record.disconnected = True
            raise
        finally:
            record.ended_at = time.monotonic()
            if not record.finished:
                record.disconnected = True

    # -- lifecycle -----------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeAnthropic:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY on accepted ones
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake upstream did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)


if __name__ == "__main__":  # a manual run: python tests/fake_upstream.py
    fake = FakeAnthropic().start()
    print(fake.base_url, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        fake.stop()
