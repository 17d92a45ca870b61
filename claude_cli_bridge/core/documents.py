"""Documents from clients (OpenAI ``file`` parts, PDFs among Ollama ``images``) to DocumentBlocks.

Claude reads PDFs natively and takes plain text as a document; the CLI passes ``document``
blocks through its stream-json input and its transcripts unchanged (checked with 2.1.332), so
what reaches the model is the caller's file, byte for byte. A PDF is recognised by its bytes
(``%PDF-``), whatever type the caller declared; text is any ``text/*`` type, JSON, or a name
ending in a text suffix, and must be UTF-8. Everything else is refused with a 4xx naming the
message and part: the upstream takes no other document types.
"""

from __future__ import annotations

import base64

from ..errors import InvalidRequest
from .encoded import decode_base64, parse_data_url
from .messages import DocumentBlock

PDF = "application/pdf"
TEXT = "text/plain"
TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".log", ".xml", ".html", ".htm", ".yaml", ".yml")


def is_pdf(raw: bytes) -> bool:
    return raw.startswith(b"%PDF-")


def document_from_file_data(file_data: str, filename: str | None, max_bytes: int, where: str) -> DocumentBlock:
    """A DocumentBlock for OpenAI's ``file.file_data``: a data URL (``data:application/pdf;
    base64,...``) or bare base64; raises a 4xx naming ``where`` and the problem."""
    parsed = parse_data_url(file_data)
    declared = parsed.media_type if parsed else ""
    raw = decode_base64(parsed.data if parsed else file_data, max_bytes, where)
    if not raw:
        raise InvalidRequest(f"{where}: the file is empty.", param=where)
    if is_pdf(raw):
        return DocumentBlock(PDF, base64.b64encode(raw).decode("ascii"), filename or None)
    name = (filename or "").lower()
    textual = declared.startswith("text/") or declared == "application/json" or name.endswith(TEXT_SUFFIXES)
    if not textual:
        kind = declared or "unknown type"
        raise InvalidRequest(
            f"{where}: unsupported file ({kind}{', ' + filename if filename else ''}); send a PDF or a "
            "UTF-8 text file (images go in image_url parts).",
            param=where,
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{where}: the text file is not UTF-8.", param=where) from None
    if not text.strip():
        raise InvalidRequest(f"{where}: the text file is empty.", param=where)
    return DocumentBlock(TEXT, text, filename or None)


def pdf_from_base64(data: str, max_bytes: int, where: str) -> DocumentBlock | None:
    """A PDF DocumentBlock if bare base64 (an Ollama ``images`` entry) decodes to a PDF, else None."""
    head = "".join(data[:16].split())
    if not head.startswith("JVBERi0"):  # base64 of "%PDF-"
        return None
    raw = decode_base64(data, max_bytes, where, "document")
    return DocumentBlock(PDF, base64.b64encode(raw).decode("ascii")) if is_pdf(raw) else None
