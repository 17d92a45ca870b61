"""The tap's own upstream client, pure: chunked framing removed whatever the reads cut, and
which proxy applies as the CLI's environment gives them. (test_tap_upstream_e2e.py runs the
client against scripted servers and proxies on loopback.)"""

from __future__ import annotations

import pytest

from claude_cli_bridge.tap.upstream import ChunkedDecoder, UpstreamError, _proxy_for

pytestmark = pytest.mark.unit

CHUNKED = b"5\r\nhello\r\n1;ext=1\r\n \r\n6\r\nworld!\r\n0\r\nx-trailer: 1\r\n\r\n"


@pytest.mark.parametrize("step", [1, 2, 3, 7, len(CHUNKED)])
def test_the_decoder_gives_the_body_whatever_the_reads_cut(step):
    decoder = ChunkedDecoder()
    out = b"".join(decoder.feed(CHUNKED[i : i + step]) for i in range(0, len(CHUNKED), step))
    assert out == b"hello world!" and decoder.done and decoder.leftover == b""


def test_the_decoder_refuses_what_is_not_chunked():
    with pytest.raises(UpstreamError):
        ChunkedDecoder().feed(b"zz\r\n")
    with pytest.raises(UpstreamError):
        ChunkedDecoder().feed(b"2\r\nabXY")


def test_which_proxy_applies():
    assert _proxy_for("https", "api.anthropic.com", {}) is None
    proxy = _proxy_for("https", "api.anthropic.com", {"HTTPS_PROXY": "http://u%40x:p@proxy:3128"})
    assert (proxy.host, proxy.port, proxy.authorization) == ("proxy", 3128, b"Basic dUB4OnA=")
    assert _proxy_for("https", "api.anthropic.com", {"https_proxy": "proxy:1", "NO_PROXY": ".anthropic.com"}) is None
    assert (
        _proxy_for("http", "127.0.0.1", {"HTTPS_PROXY": "http://proxy:1"}) is None
    )  # the http upstream's is HTTP_PROXY
    assert _proxy_for("http", "127.0.0.1", {"ALL_PROXY": "http://proxy:1"}).port == 1
    with pytest.raises(ValueError, match="http:// proxies only"):
        _proxy_for("https", "api.anthropic.com", {"ALL_PROXY": "socks5://proxy:1080"})
