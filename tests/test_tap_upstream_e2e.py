"""The tap's own upstream client against scripted servers and proxies on loopback: proxies as
the CLI's environment gives them (an absolute-form request for HTTP, a CONNECT tunnel for
HTTPS with the CA bundle of SSL_CERT_FILE), kept-alive connections reused, and one retry on a
connection the upstream closed while idle."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import pytest
from test_tap_upstream_unit import CHUNKED

from claude_cli_bridge.tap.server import ssl_context
from claude_cli_bridge.tap.upstream import UpstreamClient

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(60)]


async def body(response) -> bytes:
    return b"".join([piece async for piece in response.reads()])


class Origin:
    """A scripted HTTP/1.1 server: answers every request with ``answer``, counts connections
    and keeps each request head."""

    def __init__(self, answer: bytes, context: ssl.SSLContext | None = None, close_after: int | None = None):
        self.answer, self.context, self.close_after = answer, context, close_after
        self.connections = 0
        self.heads: list[bytes] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.context)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        self.connections += 1
        served = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)  # fmt: skip
                await reader.readexactly(length)
                writer.write(self.answer)
                await writer.drain()
                served += 1
                if self.close_after is not None and served >= self.close_after:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self):
        self.server.close()


class Proxy:
    """A forward proxy: CONNECT tunnels, and absolute-form requests relayed to their origin."""

    def __init__(self):
        self.lines: list[bytes] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self.server.sockets[0].getsockname()[1]

    async def _serve(self, reader, writer):
        head = await reader.readuntil(b"\r\n\r\n")
        self.lines.append(head.split(b"\r\n")[0])
        method, target, _ = head.split(b" ", 2)
        if method == b"CONNECT":
            host, port = target.rsplit(b":", 1)
            up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            authority = target.split(b"/")[2]
            host, port = authority.rsplit(b":", 1)
            up_reader, up_writer = await asyncio.open_connection(host.decode(), int(port))
            path = b"/" + target.split(b"/", 3)[3]
            up_writer.write(method + b" " + path + b" " + head.split(b" ", 2)[2])

        async def pipe(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def stop(self):
        self.server.close()


ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n" + CHUNKED


async def test_a_plain_http_upstream_through_a_proxy_gets_an_absolute_form_request():
    origin, proxy = Origin(ANSWER), Proxy()
    origin_port, proxy_port = await origin.start(), await proxy.start()
    client = UpstreamClient(
        f"http://127.0.0.1:{origin_port}/base", {"HTTP_PROXY": f"http://who:pw@127.0.0.1:{proxy_port}"}, ssl_context({})
    )
    try:
        response = await client.send("POST", b"/v1/messages?x=1", [(b"x-api-key", b"k")], b"{}")
        assert (response.status, await body(response)) == (200, b"hello world!")
        response.close()
    finally:
        await client.aclose()
        await origin.stop()
        await proxy.stop()
    assert proxy.lines == [f"POST http://127.0.0.1:{origin_port}/base/v1/messages?x=1 HTTP/1.1".encode()]
    assert b"x-api-key: k" in origin.heads[0] and b"Proxy-Authorization: Basic" in origin.heads[0]


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_an_https_upstream_through_a_connect_tunnel_trusts_the_given_ca_bundle(tmp_path):
    cert, key = _certificate(tmp_path)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    origin, proxy = Origin(ANSWER, server_context), Proxy()
    origin_port, proxy_port = await origin.start(), await proxy.start()
    env = {"HTTPS_PROXY": f"http://127.0.0.1:{proxy_port}", "SSL_CERT_FILE": str(cert)}
    client = UpstreamClient(f"https://127.0.0.1:{origin_port}", env, ssl_context(env))
    try:
        response = await client.send("GET", b"/v1/models", [], b"")
        assert (response.status, await body(response)) == (200, b"hello world!")
        response.close()
        untrusted = UpstreamClient(
            f"https://127.0.0.1:{origin_port}", {"HTTPS_PROXY": env["HTTPS_PROXY"]}, ssl_context({})
        )
        with pytest.raises(ssl.SSLError):
            await untrusted.send("GET", b"/v1/models", [], b"")
    finally:
        await client.aclose()
        await origin.stop()
        await proxy.stop()
    assert proxy.lines[0] == f"CONNECT 127.0.0.1:{origin_port} HTTP/1.1".encode()
    assert origin.heads[0].startswith(b"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1:")


async def test_connections_are_kept_alive_and_one_closed_while_idle_is_replaced():
    origin = Origin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", close_after=2)
    port = await origin.start()
    client = UpstreamClient(f"http://127.0.0.1:{port}", {}, ssl_context({}))
    try:
        for _ in range(3):
            response = await client.send("POST", b"/v1/messages", [], b"{}")
            assert await body(response) == b"ok"
            response.close()
            await asyncio.sleep(0.05)  # the origin's close after its second answer arrives
    finally:
        await client.aclose()
        await origin.stop()
    assert origin.connections == 2  # two answers on the first, then a new one


async def test_an_unfinished_answer_closes_its_connection():
    origin = Origin(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
    port = await origin.start()
    client = UpstreamClient(f"http://127.0.0.1:{port}", {}, ssl_context({}))
    try:
        response = await client.send("POST", b"/v1/messages", [], b"{}")
        async for _ in response.reads():
            break
        response.close()  # the caller left: not reused, the upstream sees the close
        assert client._idle == []
    finally:
        await client.aclose()
        await origin.stop()
