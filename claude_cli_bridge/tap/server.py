"""The tap's listener: a loopback HTTP server inside the bridge's event loop that relays the
CLI's upstream requests.

Contract:

- It listens on 127.0.0.1, on a port chosen when it is built; every path starts with a
  random per-run prefix (``/<prefix>/<label>/...``), so nothing else on the machine can use
  it as an open relay to the user's account. ``label`` names the account whose credentials
  the requesting CLI carries (today always ``default``).
- Method, path (after the label), query, headers and body reach the upstream unchanged, but
  for the hop-by-hop headers (``Host``, ``Connection``, ``Content-Length`` are the
  connection's own) and what ``rewrite`` removes from a Messages body (the CLI's environment
  note, unless ``keep_environment_note``). The response comes back as it arrives: status,
  headers and each chunk of the raw body (still compressed if it was) passed on at once.
- ``on_headers(label, status, headers)`` sees every upstream response's headers (the
  subscription windows are read from them).
- A request the CLI drops (an interrupt, a stopped process) is dropped upstream at once.
- Credentials (``Authorization``, ``x-api-key``) pass through untouched and are never stored
  or logged; log lines name method, path and status only.
- Proxies (``HTTPS_PROXY``, ``NO_PROXY``...) and CA bundles (``SSL_CERT_FILE``,
  ``NODE_EXTRA_CA_CERTS``) of the bridge's environment apply to the upstream side, as the
  CLI would have applied them itself.

The listener is uvicorn serving a bare ASGI callable (no framework); the upstream side is the
tap's own HTTP/1.1 client (``upstream``), which hands on the body per network read rather
than per HTTP chunk (the relay adds well under a millisecond, bench/bench_tap.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import secrets
import socket
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import certifi
import uvicorn
from starlette.types import Receive, Scope, Send

from ..core.status import TapCounters, TapSnapshot
from .inject import ANSWER_LOCALLY, Assignment, InjectMismatch, canned_answer, splice
from .rewrite import encode, strip_environment_note
from .upstream import UpstreamClient, UpstreamResponse
from .warmup import WarmupMismatch, is_warmup_request, strip_warmup, warmup_response, warmup_text

log = logging.getLogger(__name__)

DEFAULT_UPSTREAM = "https://api.anthropic.com"
DEFAULT_LABEL = "default"
# Headers that describe one connection, not the request (RFC 9110 section 7.6.1), plus the
# ones the relay recomputes for its own connection.
HOP_BY_HOP = frozenset(
    {
        "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
        "te", "trailer", "transfer-encoding", "upgrade", "host", "content-length",
    }
)  # fmt: skip
RESPONSE_DROPPED = HOP_BY_HOP - {"content-length"}  # the raw body is relayed, so its length holds
LABEL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")

HeadersCallback = Callable[[str, int, Mapping[str, str]], None]


@dataclass
class _Slot:
    """One process's own URL (``/_w<token>``): whether it runs the warm-up turn first and
    whether that was answered; for a worker (``tap.inject``), the turn it serves now."""

    warm: bool
    worker: bool = False
    warmed: bool = False
    assignment: Assignment | None = None


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: never its path or user info (for /health, doctor)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def upstream_base_url(env: Mapping[str, str]) -> str:
    """Where the CLI would have sent its requests: the bridge's own ANTHROPIC_BASE_URL, else
    the Anthropic API."""
    return (env.get("ANTHROPIC_BASE_URL") or DEFAULT_UPSTREAM).rstrip("/")


@dataclass(frozen=True)
class TapSettings:
    upstream: str = DEFAULT_UPSTREAM
    keep_environment_note: bool = False
    #: How many forwarded requests to keep for the dashboard (LOG_CONTENT only; 0: none).
    record: int = 0
    record_max_bytes: int = 32 * 1024 * 1024


def ssl_context(env: Mapping[str, str]) -> ssl.SSLContext:
    """The CAs the CLI would trust: ``SSL_CERT_FILE`` if set, else the Mozilla bundle (as
    Node's own), plus ``NODE_EXTRA_CA_CERTS``."""
    context = ssl.create_default_context(cafile=env.get("SSL_CERT_FILE") or certifi.where())
    extra = env.get("NODE_EXTRA_CA_CERTS")
    if extra:
        context.load_verify_locations(cafile=extra)
    return context


class _QuietServer(uvicorn.Server):
    """uvicorn without its signal handling (the bridge's own server owns SIGINT/SIGTERM) and
    without its lifecycle lines ("Started server process", "Shutting down", "Finished server
    process"): uvicorn logs them through the process-wide ``uvicorn.error`` logger, where they
    read as a second bridge starting and stopping. Warnings and errors still pass."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        serving = asyncio.current_task()

        def not_ours(record: logging.LogRecord) -> bool:
            if record.levelno >= logging.WARNING:
                return True
            try:
                return asyncio.current_task() is not serving
            except RuntimeError:  # logged outside any event loop: not from this task
                return True

        uvicorn_log = logging.getLogger("uvicorn.error")
        uvicorn_log.addFilter(not_ours)
        try:
            await super().serve(sockets)
        finally:
            uvicorn_log.removeFilter(not_ours)


class Tap:
    def __init__(self, settings: TapSettings, env: Mapping[str, str], on_headers: HeadersCallback | None = None):
        self.settings = settings
        self._env = dict(env)
        self._on_headers = on_headers
        self.prefix = secrets.token_hex(16)
        # IPPROTO_TCP named, so asyncio sets TCP_NODELAY on every accepted connection (it
        # checks the protocol number, 0 for a bare SOCK_STREAM socket): with Nagle on, each
        # answer's first chunk waited for the CLI's delayed ACK of the headers, 40 ms.
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self._server: _QuietServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._client: UpstreamClient | None = None
        self.seen: deque[dict[str, Any]] = deque()  # what the model saw (LOG_CONTENT only)
        self._seen_bytes = 0
        self.counters = TapCounters()
        # Spares' warm-up (tap.warmup): the per-run marker and each warmed process's state.
        self.warmup_text = warmup_text(secrets.token_hex(16))
        self._slots: dict[str, _Slot] = {}  # token -> the process's slot

    def warm_url(self, label: str = DEFAULT_LABEL, *, warm: bool = True, worker: bool = False) -> tuple[str, str]:
        """(ANTHROPIC_BASE_URL, token) for a process of its own URL: one that will run the
        warm-up turn first (``warm``), a worker (its turns carry an ``assign``ed conversation),
        or both; ``forget(token)`` when the process is gone."""
        token = secrets.token_hex(8)
        self._slots[token] = _Slot(warm=warm, worker=worker)
        return f"{self.base_url(label)}/_w{token}", token

    def forget(self, token: str) -> None:
        self._slots.pop(token, None)

    def assign(self, token: str, assignment: Assignment) -> None:
        """The worker of ``token`` serves ``assignment``'s turn: its requests carry that
        conversation until ``release``. Raises KeyError for a token that is gone."""
        self._slots[token].assignment = assignment

    def release(self, token: str) -> None:
        """The worker's turn is over: a request it makes now is refused, never forwarded."""
        slot = self._slots.get(token)
        if slot is not None:
            slot.assignment = None

    def base_url(self, label: str = DEFAULT_LABEL) -> str:
        """The ANTHROPIC_BASE_URL of a CLI process whose login is ``label``'s."""
        return f"http://127.0.0.1:{self.port}/{self.prefix}/{quote(label, safe='')}"

    # -- lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        # HTTPS_PROXY, ALL_PROXY, NO_PROXY and the CA bundles of the bridge's environment.
        self._client = UpstreamClient(self.settings.upstream, self._env, ssl_context(self._env))
        # log_level None: uvicorn would otherwise set its loggers' level for the whole process
        # (the bridge's own server logs through them).
        config = uvicorn.Config(
            self, log_level=None, lifespan="off", access_log=False, log_config=None, timeout_keep_alive=600
        )
        self._server = _QuietServer(config)
        self._sock.listen(512)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]))
        while not self._server.started and not self._task.done():  # noqa: ASYNC110 - uvicorn has no event
            await asyncio.sleep(0.005)
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def close(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
        if self._client is not None:
            await self._client.aclose()
        self._sock.close()

    def snapshot(self) -> TapSnapshot:
        """For /health: the port, the upstream's origin (never a path or user info) and counters."""
        return TapSnapshot(self.port, origin(self.settings.upstream), dataclasses.replace(self.counters))

    # -- the relay -----------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        label, token, path = self._route(scope.get("raw_path") or scope["path"].encode())
        if label is None:
            await _reply(send, 404, {"type": "error", "error": {"type": "not_found_error", "message": "Not found."}})
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body.extend(message.get("body", b""))
            if not message.get("more_body"):
                break
        self.counters.requests += 1
        try:
            rewritten = self._rewrite(scope["method"], path, scope["headers"], bytes(body), token)
        except (WarmupMismatch, InjectMismatch) as exc:
            self.counters.refused += 1
            log.warning("tap: refused a request it cannot make faithful: %s", exc)
            why = f"The bridge's upstream tap refused this request (not what this CLI should send: {exc})."
            await _reply(send, 502, {"type": "error", "error": {"type": "api_error", "message": why}})
            return
        except Exception as exc:  # never forwarded as it came: it may hold the note (host details)
            self.counters.refused += 1
            log.error("tap: could not rewrite a request body (%s); refused", type(exc).__name__)
            why = f"The bridge's upstream tap could not rewrite this request ({type(exc).__name__})."
            await _reply(send, 502, {"type": "error", "error": {"type": "api_error", "message": why}})
            return
        if isinstance(rewritten, tuple):  # the warm-up: answered here, never forwarded
            content_type, data = rewritten
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]})
            await send({"type": "http.response.body", "body": data})
            return
        answered = asyncio.Event()  # the whole response was sent (uvicorn then reports a disconnect too)
        forward = asyncio.create_task(self._forward(scope, label, path, rewritten, send, answered))
        watch = asyncio.create_task(_disconnected(receive))
        try:
            done, _ = await asyncio.wait({forward, watch}, return_when=asyncio.FIRST_COMPLETED)
            if forward not in done and not answered.is_set():
                # The CLI dropped the request: drop the upstream's at once.
                self.counters.dropped += 1
                forward.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await forward
        finally:
            watch.cancel()
            forward.cancel()

    def _route(self, raw_path: bytes) -> tuple[str | None, str | None, bytes]:
        """(label, warm-up token, upstream path) of ``/<prefix>/<label>[/_w<token>]/<path>``;
        label None when it is not ours (or the token is unknown)."""
        parts = raw_path.split(b"/", 3)
        if len(parts) < 3 or parts[0] != b"" or not secrets.compare_digest(parts[1], self.prefix.encode()):
            return None, None, b""
        label = parts[2].decode("latin-1")
        if not label or not set(label) <= LABEL_CHARS:
            return None, None, b""
        path = b"/" + (parts[3] if len(parts) > 3 else b"")
        token = None
        if path.startswith(b"/_w"):
            head, _, tail = path[3:].partition(b"/")
            token = head.decode("latin-1")
            if token not in self._slots:
                return None, None, b""
            path = b"/" + tail
        return label, token, path

    async def _forward(  # noqa: PLR0917 - one call site, each argument is the request's
        self, scope: Scope, label: str, path: bytes, body: bytes, send: Send, answered: asyncio.Event
    ) -> None:
        assert self._client is not None
        headers = [(k, v) for k, v in scope["headers"] if k.decode("latin-1").lower() not in HOP_BY_HOP]
        target = path + (b"?" + scope["query_string"] if scope.get("query_string") else b"")
        try:
            response = await self._client.send(scope["method"], target, headers, body)
        except (OSError, asyncio.IncompleteReadError) as exc:  # (TimeoutError is an OSError)
            self.counters.upstream_errors += 1
            log.warning("tap: %s %s: upstream unreachable: %s", scope["method"], path.decode(), type(exc).__name__)
            message = f"The bridge could not reach the upstream {origin(self.settings.upstream)}: {type(exc).__name__}."
            answered.set()
            await _reply(send, 502, {"type": "error", "error": {"type": "api_error", "message": message}})
            return
        try:
            self._note(label, path, body, response)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status,
                    "headers": [
                        (k, v) for k, v in response.headers if k.decode("latin-1").lower() not in RESPONSE_DROPPED
                    ],
                }
            )
            await _relay(response, send)
            answered.set()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            response.close()

    def _rewrite(
        self, method: str, path: bytes, headers: list[tuple[bytes, bytes]], body: bytes, token: str | None
    ) -> bytes | tuple[bytes, bytes]:
        """The body to forward: a worker's request carrying its turn's conversation
        (``inject.splice``), a Messages request without the warm-up exchange (warmed
        processes), and without the CLI's environment note. For the warm-up request itself and
        a worker's follow-up after the caller's tool calls, (content type, body) of the tap's
        own answer. Raises WarmupMismatch or InjectMismatch for a request that cannot be made
        what a fresh process would send."""
        messages_path = path.rstrip(b"/").endswith((b"/messages", b"/messages/count_tokens"))
        slot = self._slots.get(token) if token is not None else None
        if method != "POST" or not messages_path:
            return body
        if slot is not None and slot.worker and not path.rstrip(b"/").endswith(b"/messages"):
            raise InjectMismatch("a worker's request other than a turn carries no caller conversation")
        if any(k.lower() == b"content-encoding" for k, _ in headers):
            if slot is not None:
                raise WarmupMismatch("a compressed body cannot be checked")
            return body  # not JSON we can read; the CLI does not compress its requests
        try:
            parsed = json.loads(body)
        except ValueError:
            if slot is not None:
                raise WarmupMismatch("the body is not JSON") from None
            return body
        if not isinstance(parsed, dict):
            if slot is not None:
                raise WarmupMismatch("the body is not a JSON object")
            return body
        changed = False
        if slot is not None:
            if (
                slot.warm
                and not slot.warmed
                and slot.assignment is None
                and is_warmup_request(parsed, self.warmup_text)
            ):
                slot.warmed = True
                self.counters.warmups_answered += 1
                return warmup_response(parsed)
            if slot.worker:
                if slot.assignment is None:
                    raise InjectMismatch("a worker's request outside any turn")
                spliced = splice(parsed, slot.assignment)
                if spliced == ANSWER_LOCALLY:
                    self.counters.followups_answered += 1
                    return canned_answer(parsed)
                assert isinstance(spliced, dict)
                parsed = spliced
                self.counters.turns_injected += 1
                changed = True
            elif slot.warmed:
                strip_warmup(parsed, self.warmup_text)
                self.counters.warmups_removed += 1
                changed = True
            elif self.warmup_text in body.decode("utf-8", errors="replace"):
                raise WarmupMismatch("the warm-up marker in an unexpected request")
        if not self.settings.keep_environment_note and strip_environment_note(parsed):
            self.counters.notes_removed += 1
            changed = True
        return encode(parsed) if changed else body

    def _note(self, label: str, path: bytes, body: bytes, response: UpstreamResponse) -> None:
        """Hand the response headers on (windows) and, with LOG_CONTENT, keep what was sent."""
        headers = _header_map(response.headers)
        if self._on_headers is not None:
            try:
                self._on_headers(label, response.status, headers)
            except Exception:  # the relay never fails for its observers
                log.exception("tap: reading the response headers failed")
        if self.settings.record <= 0:
            return
        entry = {
            "at": time.time(),
            "label": label,
            "path": path.decode("latin-1"),
            "status": response.status,
            "request_body": body.decode("utf-8", errors="replace"),
            "response_headers": {k: v for k, v in headers.items() if k != "set-cookie"},
        }
        entry["size"] = len(body)
        self.seen.append(entry)
        self._seen_bytes += len(body)
        limits = self.settings
        while self.seen and (len(self.seen) > limits.record or self._seen_bytes > limits.record_max_bytes):
            self._seen_bytes -= self.seen.popleft()["size"]


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """Header names lowercased, repeated headers joined with ", " (RFC 9110 section 5.3)."""
    headers: dict[str, str] = {}
    for name, value in raw:
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers


async def _relay(response: UpstreamResponse, send: Send) -> None:
    """Pass the raw body on as it arrives. Reading and writing run apart: whatever arrived
    while the last write was being made goes out as one write (nothing waits for more; under
    load fewer, larger writes)."""
    pending: list[bytes] = []
    arrived = asyncio.Event()
    ended = False

    async def read() -> None:
        nonlocal ended
        try:
            async for chunk in response.reads():
                pending.append(chunk)
                arrived.set()
        finally:
            ended = True
            arrived.set()

    reader = asyncio.create_task(read())
    try:
        while True:
            if not pending and not ended:
                await arrived.wait()
                arrived.clear()
            if pending:
                data = b"".join(pending)
                pending.clear()
                await send({"type": "http.response.body", "body": data, "more_body": True})
            elif ended:
                break
        await reader  # raises what ended the read early
    finally:
        reader.cancel()


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _reply(send: Send, status: int, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": data})
