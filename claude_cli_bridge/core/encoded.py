"""Base64 payloads from callers (images, documents): decoded strictly, within a size bound.

Both ``core.images`` and ``core.documents`` take what clients send as bare base64 or as a
``data:<type>;base64,<data>`` URL; the checks are the same, and so are the 4xx messages that
name the message and part.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from ..errors import InvalidRequest, RequestTooLarge

_DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^,;]*)*?);base64,(?P<data>.*)$", re.DOTALL)


@dataclass(frozen=True)
class DataUrl:
    media_type: str  # lower case; empty when the URL declares none
    data: str  # the base64 payload, as sent


def parse_data_url(url: str) -> DataUrl | None:
    """``data:<type>;base64,<data>`` split in two; None for anything else."""
    match = _DATA_URL.match(url.strip())
    if match is None:
        return None
    return DataUrl((match.group("type") or "").lower(), match.group("data"))


def decode_base64(data: str, max_bytes: int, where: str, what: str = "file") -> bytes:
    """Strict base64 (white space allowed: clients wrap lines) within ``max_bytes``; a 4xx
    naming ``where`` and ``what`` otherwise."""
    data = "".join(data.split())
    if len(data) * 3 // 4 > max_bytes + 3:
        raise RequestTooLarge(f"{where}: the {what} is larger than the {max_bytes} byte limit.", param=where)
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{where}: the {what} is not valid base64.", param=where) from None
    if len(raw) > max_bytes:
        raise RequestTooLarge(f"{where}: the {what} is larger than the {max_bytes} byte limit.", param=where)
    return raw
