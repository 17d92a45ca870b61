"""Images from clients: data URLs (OpenAI) and bare base64 (Ollama) to ImageBlocks.

The base64 that reaches the model is the client's own, byte for byte, once it is known to
decode to an image of a supported type within the size limit. The media type comes from
the bytes themselves (a data URL's declared type must agree), since the upstream rejects
a mismatch.
"""

from __future__ import annotations

from ..errors import InvalidRequest
from .encoded import decode_base64, parse_data_url
from .messages import ImageBlock

SUPPORTED = ("image/png", "image/jpeg", "image/gif", "image/webp")


def sniff_media_type(raw: bytes) -> str | None:
    """The image type from its magic bytes, or None if it is none we support."""
    if raw.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if raw.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if raw.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if raw[:4] == b"RIFF" and raw[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_from_base64(data: str, max_bytes: int, where: str) -> ImageBlock:
    """An ImageBlock for bare base64 (Ollama ``images``); raises a 4xx naming the problem."""
    data = "".join(data.split())  # clients sometimes wrap base64 lines
    raw = decode_base64(data, max_bytes, where, "image")
    media_type = sniff_media_type(raw)
    if media_type is None:
        raise InvalidRequest(f"{where}: unsupported or undecodable image; send PNG, JPEG, GIF or WebP.", param=where)
    return ImageBlock(media_type, data)


def image_from_data_url(url: str, max_bytes: int, where: str) -> ImageBlock:
    """An ImageBlock for a ``data:image/...;base64,...`` URL; raises a 4xx naming the problem."""
    parsed = parse_data_url(url)
    if parsed is None:
        if url.startswith(("http://", "https://")):
            raise InvalidRequest(
                f"{where}: image URLs are not fetched by this server; send the image as a data URL "
                "(data:image/png;base64,...).",
                param=where,
            )
        raise InvalidRequest(f"{where}: expected a data URL of the form data:image/png;base64,....", param=where)
    block = image_from_base64(parsed.data, max_bytes, where)
    declared = parsed.media_type
    if declared and declared != block.media_type and declared not in ("image/jpg", "application/octet-stream"):
        if declared not in SUPPORTED:
            raise InvalidRequest(
                f"{where}: unsupported image type {declared}; send PNG, JPEG, GIF or WebP.", param=where
            )
    return block
