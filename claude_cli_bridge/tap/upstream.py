"""The tap's HTTP/1.1 client for the upstream: one origin, kept-alive connections, and a
response body read per network read rather than per HTTP chunk.

Why its own client: the upstream streams an answer as one HTTP chunk per SSE event, and a
general client parses each chunk as an event of its own (h11 through httpcore: about 20 µs a
chunk here, most of the tap's cost on a long answer). This one strips the chunked framing
from whatever one read brought (``ChunkedDecoder``, a few index operations per chunk) and
hands the relay the data of the whole read at once.

Contract:

- ``UpstreamClient(base_url, env, ssl_context)``; ``await client.send(method, target, headers,
  body)`` writes the request as given (headers in order, ``Host`` and ``Content-Length`` its
  own) and returns an ``UpstreamResponse`` once the status line and headers have arrived
  (1xx interim responses skipped). ``target`` is the path and query after the base URL's
  own path.
- ``response.reads()`` yields the body as it arrives, transfer framing removed, content
  encoding kept (the raw body); ``response.close()`` (always, in a ``finally``) returns a
  cleanly finished connection to the idle set and closes any other, which drops the
  upstream request at once when the body was not finished.
- Proxies as the CLI's environment would apply them: ``HTTPS_PROXY`` (``HTTP_PROXY`` for an
  ``http`` upstream), then ``ALL_PROXY``, either case, unless ``NO_PROXY`` matches; an
  ``http://`` proxy, with ``user:password@`` sent as Basic ``Proxy-Authorization``. HTTPS
  goes through a ``CONNECT`` tunnel, plain HTTP as an absolute-form request. Other proxy
  schemes (``socks5://``, ``https://``) are refused when the client is built.
- A request on a reused connection that fails before any byte of the answer (the upstream
  closed it while idle) is sent once more on a new connection; any other failure raises
  ``OSError`` (``UpstreamError`` for what the upstream sent that is not HTTP/1.1).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ipaddress
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from urllib.parse import unquote, urlsplit

CONNECT_TIMEOUT_SECONDS = 30
IDLE_SECONDS = 30  # a kept-alive connection older than this is closed rather than reused
HEAD_LIMIT = 256 * 1024  # the status line and headers of one response
READ_SIZE = 256 * 1024


class UpstreamError(OSError):
    """The upstream (or the proxy) answered something that is not the HTTP/1.1 we speak."""


class ChunkedDecoder:
    """Removes ``Transfer-Encoding: chunked`` framing (pure: bytes in, data out).

    ``feed(data)`` returns the body bytes it completed; ``done`` once the last chunk and the
    trailers have been read; ``leftover`` holds bytes after the end (none from a sound server).
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._remaining = 0  # data bytes still to come in the current chunk
        self._crlf = False  # the CRLF after a chunk's data is due
        self._trailers = False  # the zero chunk was read: trailer lines until an empty one
        self.done = False
        self.leftover = b""

    def feed(self, data: bytes) -> bytes:
        buffer = self._buffer + data if self._buffer else data
        out: list[bytes] = []
        pos, end = 0, len(buffer)
        while not self.done:
            if self._remaining:
                take = min(self._remaining, end - pos)
                if not take:
                    break
                out.append(buffer[pos : pos + take])
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                self._crlf = True
            if self._crlf:
                if end - pos < 2:
                    break
                if buffer[pos : pos + 2] != b"\r\n":
                    raise UpstreamError("a chunk of the upstream's answer does not end in CRLF")
                pos += 2
                self._crlf = False
            line_end = buffer.find(b"\r\n", pos)
            if line_end == -1:
                if end - pos > 4096:
                    raise UpstreamError("a chunk-size line of the upstream's answer is too long")
                break
            line = buffer[pos:line_end]
            pos = line_end + 2
            if self._trailers:
                if not line:
                    self.done = True
                continue
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise UpstreamError("a chunk size of the upstream's answer is not hexadecimal") from None
            if size < 0:
                raise UpstreamError("a negative chunk size")
            if size == 0:
                self._trailers = True
            self._remaining = size
        rest = buffer[pos:]
        if self.done:
            self.leftover, self._buffer = rest, b""
        else:
            self._buffer = rest
        return b"".join(out) if len(out) != 1 else out[0]


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader, self.writer = reader, writer
        self.idle_since = time.monotonic()

    def usable(self) -> bool:
        return (
            not self.reader.at_eof()
            and not self.writer.is_closing()
            and time.monotonic() - self.idle_since < IDLE_SECONDS
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class UpstreamResponse:
    def __init__(
        self,
        client: UpstreamClient,
        connection: _Connection,
        status: int,
        headers: list[tuple[bytes, bytes]],
        head_only: bool,
    ):
        self.status: int = status
        self.headers: list[tuple[bytes, bytes]] = headers
        self._client, self._connection = client, connection
        self._finished = False
        self._reusable = True
        names = {k.lower(): v for k, v in headers}
        self._chunked = b"chunked" in names.get(b"transfer-encoding", b"").lower()
        length = names.get(b"content-length")
        self._length = int(length) if length is not None and not self._chunked else None
        if b"close" in names.get(b"connection", b"").lower():
            self._reusable = False
        if head_only or status in (204, 304):
            self._chunked, self._length = False, 0
        if not self._chunked and self._length is None:
            self._reusable = False  # the body ends when the upstream closes the connection

    async def reads(self) -> AsyncIterator[bytes]:
        """The body, transfer framing removed, one piece per network read."""
        reader = self._connection.reader
        if self._chunked:
            decoder = ChunkedDecoder()
            while not decoder.done:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise asyncio.IncompleteReadError(b"", None)
                piece = decoder.feed(data)
                if piece:
                    yield piece
            if decoder.leftover:
                self._reusable = False
        elif self._length is not None:
            left = self._length
            while left:
                data = await reader.read(min(left, READ_SIZE))
                if not data:
                    raise asyncio.IncompleteReadError(b"", left)
                left -= len(data)
                yield data
        else:
            while data := await reader.read(READ_SIZE):
                yield data
        self._finished = True

    def close(self) -> None:
        """Back to the idle set if the answer was read to its end, else closed (which drops
        the upstream request)."""
        connection, self._connection = self._connection, None  # type: ignore[assignment]
        if connection is None:
            return
        if self._finished and self._reusable:
            self._client._give_back(connection)
        else:
            connection.close()


class UpstreamClient:
    def __init__(self, base_url: str, env: Mapping[str, str], context: ssl.SSLContext | None):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the upstream URL must be http:// or https:// with a host, not {parts.scheme}://")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if self.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/").encode()
        default_port = (self.scheme == "https" and self.port == 443) or (self.scheme == "http" and self.port == 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.authority = host if default_port else f"{host}:{self.port}"
        self._context = context if self.scheme == "https" else None
        self._proxy = _proxy_for(self.scheme, self.host, env)
        self._idle: list[_Connection] = []

    async def send(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        head = self._head(method, target, headers, body)
        while self._idle:
            connection = self._idle.pop()
            if not connection.usable():
                connection.close()
                continue
            try:
                return await self._exchange(connection, method, head, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                connection.close()  # closed by the upstream while idle: a new connection
        connection = await self._connect()
        try:
            return await self._exchange(connection, method, head, body)
        except BaseException:
            connection.close()
            raise

    async def aclose(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def _give_back(self, connection: _Connection) -> None:
        connection.idle_since = time.monotonic()
        self._idle.append(connection)

    def _head(self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes) -> bytes:
        path = self.base_path + target
        if self._proxy is not None and self.scheme == "http":
            path = f"http://{self.authority}".encode() + path  # absolute form, to the proxy
        lines = [method.encode() + b" " + path + b" HTTP/1.1", b"Host: " + self.authority.encode()]
        lines.extend(name + b": " + value for name, value in headers)
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(b"Content-Length: " + str(len(body)).encode())
        if self._proxy is not None and self.scheme == "http" and self._proxy.authorization:
            lines.append(b"Proxy-Authorization: " + self._proxy.authorization)
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _exchange(self, connection: _Connection, method: str, head: bytes, body: bytes) -> UpstreamResponse:
        connection.writer.writelines((head, body))
        await connection.writer.drain()
        while True:
            status, headers = await _read_head(connection.reader)
            if not 100 <= status < 200 or status == 101:
                return UpstreamResponse(self, connection, status, headers, head_only=method == "HEAD")

    async def _connect(self) -> _Connection:
        async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
            if self._proxy is None:
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self._context, server_hostname=self.host if self._context else None,
                    limit=HEAD_LIMIT,
                )  # fmt: skip
                return _Connection(reader, writer)
            proxy = self._proxy
            reader, writer = await asyncio.open_connection(proxy.host, proxy.port, limit=HEAD_LIMIT)
            if self.scheme == "https":
                tunnel = [f"CONNECT {self.authority} HTTP/1.1".encode(), b"Host: " + self.authority.encode()]
                if proxy.authorization:
                    tunnel.append(b"Proxy-Authorization: " + proxy.authorization)
                writer.write(b"\r\n".join(tunnel) + b"\r\n\r\n")
                await writer.drain()
                status, _ = await _read_head(reader)
                if not 200 <= status < 300:
                    writer.close()
                    raise UpstreamError(f"the proxy refused the tunnel to the upstream (HTTP {status})")
                await writer.start_tls(self._context, server_hostname=self.host)  # type: ignore[arg-type]
            return _Connection(reader, writer)


class _Proxy:
    def __init__(self, url: str):
        parts = urlsplit(url if "://" in url else "http://" + url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(
                f"the upstream tap supports http:// proxies only, not {parts.scheme}:// "
                "(set UPSTREAM_TAP=off to let the CLI use it directly)"
            )
        self.host, self.port = parts.hostname, parts.port or 80
        self.authorization = b""
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
            self.authorization = b"Basic " + base64.b64encode(pair)


def _proxy_for(scheme: str, host: str, env: Mapping[str, str]) -> _Proxy | None:
    def get(name: str) -> str:
        return env.get(name.lower()) or env.get(name.upper()) or ""

    url = get(f"{scheme}_proxy") or get("all_proxy")
    if not url:
        return None
    if _bypassed(host, get("no_proxy")):
        return None
    return _Proxy(url)


def _bypassed(host: str, no_proxy: str) -> bool:
    """Whether NO_PROXY names the host: ``*``, a domain (with or without a leading dot: the
    domain and its subdomains), an address or a CIDR range; a ``:port`` on an entry ignored."""
    host = host.lower().rstrip(".")
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        try:
            if ipaddress.ip_address(host) in ipaddress.ip_network(entry.strip("[]"), strict=False):
                return True
            continue
        except ValueError:
            pass
        name = entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry
        name = name.lstrip(".").rstrip(".")
        if name and (host == name or host.endswith("." + name)):
            return True
    return False


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, list[tuple[bytes, bytes]]]:
    """The status and headers of one response (raises IncompleteReadError if none came)."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.LimitOverrunError:
        raise UpstreamError("the upstream's response headers are too long") from None
    lines = raw[:-4].split(b"\r\n")
    status_line = lines[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1.") or not status_line[1].isdigit():
        raise UpstreamError("the upstream did not answer in HTTP/1.1")
    headers = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip():
            raise UpstreamError("a malformed header line in the upstream's response")
        headers.append((name, value.strip(b" \t")))
    return int(status_line[1]), headers
