"""Fetching ``http(s)`` image URLs, when ``ALLOW_IMAGE_URLS`` allows it (off by default).

A caller must not be able to make the server reach its own network: the host name is
resolved first and every address it has must be public (no loopback, private, link-local,
multicast or reserved ranges). Size and time are bounded, and redirects are not followed
(each hop would need the same check). Not defended: a DNS answer that changes between the
check and the fetch (rebinding); keep the setting off where that matters.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import socket
from dataclasses import dataclass
from typing import TypeGuard
from urllib.parse import urlsplit

import httpx

from ..core.images import sniff_media_type
from ..errors import InvalidRequest, RequestTooLarge


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not (ip.is_multicast or ip.is_reserved)


async def _public_address(host: str, port: int, where: str) -> str:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InvalidRequest(f"{where}: cannot resolve the image host {host!r}.", param=where) from None
    addresses = {str(info[4][0]) for info in infos}
    if not addresses or not all(_is_public(address) for address in addresses):
        raise InvalidRequest(
            f"{where}: refusing to fetch an image from a private, loopback or reserved address.", param=where
        )
    return sorted(addresses)[0]


async def fetch_as_data_url(
    url: str, *, max_bytes: int, timeout: float, where: str, allow_private: bool = False
) -> str:
    """Download an image and return it as a ``data:`` URL; raises a 4xx naming the problem.

    ``allow_private`` exists for tests on loopback only.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest(f"{where}: not an http(s) URL.", param=where)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not allow_private:
        await _public_address(parts.hostname, port, where)
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise InvalidRequest(f"{where}: fetching the image gave HTTP {response.status_code}.", param=where)
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > max_bytes:
                        raise RequestTooLarge(
                            f"{where}: the image is larger than the {max_bytes} byte limit.", param=where
                        )
    except httpx.HTTPError as exc:
        raise InvalidRequest(f"{where}: could not fetch the image ({type(exc).__name__}).", param=where) from None
    media_type = sniff_media_type(bytes(body))
    if media_type is None:
        raise InvalidRequest(f"{where}: the URL did not return a PNG, JPEG, GIF or WebP image.", param=where)
    return f"data:{media_type};base64,{base64.b64encode(bytes(body)).decode()}"


@dataclass(frozen=True)
class ImageFetch:
    """The limits a surface's image-URL walker fetches with (MAX_IMAGE_BYTES,
    IMAGE_URL_TIMEOUT_SECONDS); ``data_url`` fetches one URL found at ``where``."""

    max_bytes: int
    timeout: float

    async def data_url(self, url: str, where: str) -> str:
        return await fetch_as_data_url(url, max_bytes=self.max_bytes, timeout=self.timeout, where=where)


def is_http_url(url: object) -> TypeGuard[str]:
    return isinstance(url, str) and url.startswith(("http://", "https://"))
