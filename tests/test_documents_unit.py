"""Documents, pure: OpenAI file data to document blocks (PDF and text, sniffed), bad files as
4xx naming the part, the Anthropic rendering, file parts in user messages only, and a PDF among
Ollama images; table-style."""

from __future__ import annotations

import base64

import pytest

from claude_cli_bridge.api.openai import translate
from claude_cli_bridge.api.openai.protocol import ChatCompletionRequest
from claude_cli_bridge.api.parts import MediaLimits
from claude_cli_bridge.core.documents import document_from_file_data, pdf_from_base64
from claude_cli_bridge.core.messages import DocumentBlock, TextBlock
from claude_cli_bridge.errors import InvalidRequest, RequestTooLarge

pytestmark = pytest.mark.unit

PDF = b"%PDF-1.7\n%%EOF\n"
PDF_B64 = base64.b64encode(PDF).decode()


def chat(**body):
    return translate.from_chat_request(ChatCompletionRequest.model_validate(body), MediaLimits.of(1 << 20))


@pytest.mark.parametrize(
    "file_data, filename, expected",
    [
        (f"data:application/pdf;base64,{PDF_B64}", "a.pdf", DocumentBlock("application/pdf", PDF_B64, "a.pdf")),
        (PDF_B64, None, DocumentBlock("application/pdf", PDF_B64)),  # bare base64, sniffed
        (f"data:application/octet-stream;base64,{PDF_B64}", "x", DocumentBlock("application/pdf", PDF_B64, "x")),
        ("data:text/plain;base64," + base64.b64encode(b"hi\n").decode(), "n.txt", DocumentBlock("text/plain", "hi\n", "n.txt")),
        ("data:application/octet-stream;base64," + base64.b64encode(b"a,b").decode(), "t.csv", DocumentBlock("text/plain", "a,b", "t.csv")),
    ],
)  # fmt: skip
def test_file_data_becomes_a_document(file_data, filename, expected):
    assert document_from_file_data(file_data, filename, 1 << 20, "m") == expected


@pytest.mark.parametrize(
    "file_data, filename, error, message",
    [
        ("data:application/pdf;base64,%%%", None, InvalidRequest, "not valid base64"),
        ("data:text/plain;base64," + base64.b64encode(b"\xff\xfe").decode(), "a.txt", InvalidRequest, "not UTF-8"),
        ("data:image/png;base64," + base64.b64encode(b"\x89PNG").decode(), "a.png", InvalidRequest, "unsupported file"),
        ("data:text/plain;base64,", "a.txt", InvalidRequest, "empty"),
        ("data:application/pdf;base64," + base64.b64encode(b"%PDF-" + b"x" * 100).decode(), None, RequestTooLarge, "limit"),
    ],
)  # fmt: skip
def test_bad_files_are_4xx_naming_the_part(file_data, filename, error, message):
    with pytest.raises(error, match=message) as caught:
        document_from_file_data(file_data, filename, 64, "messages[0].content[1]")
    assert caught.value.param == "messages[0].content[1]"


def test_a_document_block_renders_as_anthropics_document():
    assert DocumentBlock("application/pdf", "QQ==", "a.pdf").to_anthropic() == {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "QQ=="},
        "title": "a.pdf",
    }
    assert DocumentBlock("text/plain", "hi").to_anthropic()["source"] == {
        "type": "text",
        "media_type": "text/plain",
        "data": "hi",
    }


def test_openai_file_parts_only_in_user_messages():
    part = {"type": "file", "file": {"file_data": PDF_B64}}
    turn = chat(messages=[{"role": "user", "content": [part, {"type": "text", "text": "sum"}]}])
    assert turn.messages[0].content == (DocumentBlock("application/pdf", PDF_B64), TextBlock("sum"))
    with pytest.raises(InvalidRequest, match="user messages only"):
        chat(
            messages=[
                {"role": "user", "content": "q"},
                {"role": "assistant", "tool_calls": [{"id": "t", "function": {"name": "f", "arguments": "{}"}}]},
                {"role": "tool", "tool_call_id": "t", "content": [part]},
            ],
            tools=[{"type": "function", "function": {"name": "f"}}],
        )


def test_only_a_pdf_among_ollama_images_is_a_document():
    assert pdf_from_base64(PDF_B64, 1 << 20, "i") == DocumentBlock("application/pdf", PDF_B64)
    assert pdf_from_base64(base64.b64encode(b"\x89PNG\r\n").decode(), 1 << 20, "i") is None
