"""An aiohttp-based stand-in for the tap's own upstream client (issue 29 item 7), for the
side-by-side in bench/bench_tap.py (``upstream_client``): the same interface as
``claude_cli_bridge.tap.upstream.UpstreamClient``, so the real tap can run with either.

- ``AiohttpUpstreamClient(base_url, env, ssl_context)``; ``await client.send(method, target,
  headers, body)`` returns an ``AiohttpUpstreamResponse`` (``status``, ``headers`` as raw
  (bytes, bytes) pairs) once the head has arrived; ``await client.aclose()``.
- ``response.reads()`` yields ``resp.content.iter_any()``: whatever each network read
  brought, transfer framing removed by aiohttp's (C) parser, content encoding kept
  (``auto_decompress=False``). ``response.close()``: a finished answer's connection goes
  back to the pool (``release``), an unfinished one is closed (the upstream sees the drop).
- Proxies: ``trust_env=True``, i.e. aiohttp's reading of the *process* environment
  (``HTTP(S)_PROXY``, ``NO_PROXY`` through urllib, ``~/.netrc``), not of the ``env`` mapping the
  tap is given (the bridge passes its own environment, so the same in practice). Unlike
  ours: ``ALL_PROXY`` is ignored, ``NO_PROXY`` knows no CIDR ranges. aiohttp looks the proxy
  and ``.netrc`` up again for every request, each in a worker thread (two thread hops per
  request); ``once=True`` instead asks aiohttp's own ``get_env_proxy_for_url`` once, when the
  client is built, and passes ``proxy=`` (``trust_env`` off: no ``.netrc`` either, as ours).
- No cookie jar (``DummyCookieJar``): a session's jar would send the upstream's cookies back
  on requests the CLI made without them.
- CA bundles: the tap's ``ssl_context(env)`` is passed as ``ssl=`` (``SSL_CERT_FILE``, else
  certifi, plus ``NODE_EXTRA_CA_CERTS``), through a CONNECT tunnel too.
- Headers as given, none of aiohttp's defaults added (``User-Agent``, ``Accept``,
  ``Accept-Encoding``, ``Content-Type`` skipped unless the CLI sent them); ``Host`` and
  ``Content-Length`` aiohttp's own.
- No overall timeout (a streamed answer may run for many minutes), 30 s to connect; idle
  connections kept 30 s, no limit on their number (as ours).
- Errors become ``OSError`` (what the tap catches): an aiohttp error that is not one already
  is raised as ``UpstreamError``. A request whose connection the upstream closed before any
  answer is sent once more (aiohttp itself retries only idempotent methods).
"""

from __future__ import annotations

import contextlib
import functools
import ssl
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import aiohttp
from aiohttp.helpers import get_env_proxy_for_url
from yarl import URL

from claude_cli_bridge.tap.upstream import UpstreamError

CONNECT_TIMEOUT_SECONDS = 30
IDLE_SECONDS = 30
SKIP_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


def _os_error(exc: aiohttp.ClientError) -> OSError:
    return exc if isinstance(exc, OSError) else UpstreamError(f"{type(exc).__name__}: {exc}")


def client_class(once: bool) -> type[AiohttpUpstreamClient]:
    """``AiohttpUpstreamClient`` with ``once`` fixed (the tap builds its client with three
    arguments)."""
    return functools.partial(AiohttpUpstreamClient, once=once)  # type: ignore[return-value]


class AiohttpUpstreamResponse:
    def __init__(self, response: aiohttp.ClientResponse):
        self._response: aiohttp.ClientResponse | None = response
        self.status: int = response.status
        self.headers: list[tuple[bytes, bytes]] = list(response.raw_headers)
        self._finished = False

    async def reads(self) -> AsyncIterator[bytes]:
        assert self._response is not None
        try:
            async for data in self._response.content.iter_any():
                yield data
        except aiohttp.ClientError as exc:
            raise _os_error(exc) from exc
        self._finished = True

    def close(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        if self._finished:
            response.release()
        else:
            response.close()


class AiohttpUpstreamClient:
    def __init__(self, base_url: str, env: Mapping[str, str], context: ssl.SSLContext | None, *, once: bool = False):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the upstream URL must be http:// or https:// with a host, not {parts.scheme}://")
        self.base = base_url.rstrip("/")
        self._ssl: ssl.SSLContext | bool = context if (parts.scheme == "https" and context is not None) else True
        self._session: aiohttp.ClientSession | None = None
        self._once = once
        self._proxy: URL | None = None
        self._proxy_auth: aiohttp.BasicAuth | None = None
        if once:
            with contextlib.suppress(LookupError):
                self._proxy, self._proxy_auth = get_env_proxy_for_url(URL(self.base))

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # made in the running loop, at the first request
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=IDLE_SECONDS, ssl=self._ssl)
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=not self._once,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT_SECONDS),
                skip_auto_headers=SKIP_AUTO_HEADERS,
            )
        return self._session

    async def send(
        self, method: str, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> AiohttpUpstreamResponse:
        url = URL(self.base + target.decode("latin-1"), encoded=True)
        pairs = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in headers]
        data = body if (body or method in ("POST", "PUT", "PATCH")) else None
        session = self._client()
        for attempt in (1, 2):
            try:
                response = await session.request(
                    method, url, headers=pairs, data=data, allow_redirects=False,
                    proxy=self._proxy, proxy_auth=self._proxy_auth,
                )  # fmt: skip
                return AiohttpUpstreamResponse(response)
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
                if attempt == 2 or isinstance(exc, aiohttp.ClientConnectorError):
                    raise _os_error(exc) from exc
            except aiohttp.ClientError as exc:
                raise _os_error(exc) from exc
        raise AssertionError("unreachable")

    @property
    def _idle(self) -> list[object]:
        """The kept-alive connections (as ``UpstreamClient._idle``, which a test reads)."""
        if self._session is None:
            return []
        return [c for conns in self._session.connector._conns.values() for c in conns]  # type: ignore[union-attr]

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
