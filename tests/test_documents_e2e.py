"""Documents end to end: OpenAI ``file`` parts (a PDF, a text file), PDFs among Ollama
``images``, Anthropic ``document`` blocks and Responses ``input_file`` items reach the upstream
as Claude ``document`` blocks, byte for byte, in the newest turn and in history. Real CLI, fake
upstream, the clients' own SDKs. (Bad and oversized files, refused before the engine, are in
test_openai_routes.py.)"""

from __future__ import annotations

import base64
import json

import anthropic
import ollama
import openai
import pytest

pytestmark = pytest.mark.e2e

PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PDF_B64 = base64.b64encode(PDF).decode()
TEXT = "Quarterly notes\nRevenue: 42\n@/etc/passwd stays text\n"


def pdf_part(filename: str = "report.pdf") -> dict:
    return {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF_B64}", "filename": filename}}


def documents_in(message: dict) -> list[dict]:
    content = message["content"]
    return [block for block in content if isinstance(block, dict) and block.get("type") == "document"]


@pytest.fixture
def client(bridge):
    return openai.OpenAI(base_url=bridge.openai_url, api_key="unused", max_retries=0)


def test_a_pdf_file_part_reaches_the_upstream_as_a_document_block(client, fake):
    answer = client.chat.completions.create(
        model="sonnet",
        messages=[{"role": "user", "content": [pdf_part(), {"type": "text", "text": "Summarise this."}]}],
    )
    assert answer.choices[0].message.content == "Hello from the fake."
    user = next(m for m in fake.received[-1].messages if m["role"] == "user")
    assert documents_in(user) == [
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
            "title": "report.pdf",
        }
    ]
    assert base64.b64decode(documents_in(user)[0]["source"]["data"]) == PDF
    assert any(block.get("text") == "Summarise this." for block in user["content"])


def test_a_text_file_part_is_a_text_document(client, fake):
    data = base64.b64encode(TEXT.encode()).decode()
    client.chat.completions.create(
        model="sonnet",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "file", "file": {"file_data": f"data:text/plain;base64,{data}", "filename": "notes.txt"}},
                    {"type": "text", "text": "What was the revenue?"},
                ],
            }
        ],
    )
    user = next(m for m in fake.received[-1].messages if m["role"] == "user")
    assert documents_in(user) == [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": TEXT}, "title": "notes.txt"}
    ]


def test_a_document_in_an_earlier_turn_reaches_the_upstream_through_the_transcript(client, fake):
    client.chat.completions.create(
        model="sonnet",
        messages=[
            {"role": "user", "content": [pdf_part("old.pdf"), {"type": "text", "text": "Read it."}]},
            {"role": "assistant", "content": "Read."},
            {"role": "user", "content": "What did it say?"},
        ],
    )
    first_user = next(m for m in fake.received[-1].messages if m["role"] == "user")
    assert documents_in(first_user)[0]["source"]["data"] == PDF_B64
    assert documents_in(first_user)[0]["title"] == "old.pdf"


def test_ollama_a_pdf_among_images_is_a_document(bridge, fake):
    response = ollama.Client(host=bridge.ollama_url).chat(
        model="sonnet", messages=[{"role": "user", "content": "Summarise", "images": [PDF_B64]}]
    )
    assert response.message.content == "Hello from the fake."
    user = next(m for m in fake.received[-1].messages if m["role"] == "user")
    assert documents_in(user) == [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64}}
    ]


# -- Anthropic Messages and Responses ------------------------------------------------------
@pytest.fixture
def claude(bridge):
    return anthropic.Anthropic(base_url=bridge.base_url, api_key="x", max_retries=0)


def test_anthropic_documents_reach_the_upstream_byte_for_byte(claude, fake):
    claude.messages.create(
        model="sonnet",
        max_tokens=64,
        messages=[
            {
                "role": "user",
                "content": [
                    {
                        "type": "document",
                        "source": {"type": "base64", "media_type": "application/pdf", "data": PDF_B64},
                    },
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "plain notes"}},
                    {"type": "text", "text": "Summarize both."},
                ],
            }
        ],
    )
    blocks = [b for m in fake.received[-1].messages if m["role"] == "user" for b in m["content"]]
    documents = [b["source"] for b in blocks if b.get("type") == "document"]
    assert {"type": "base64", "media_type": "application/pdf", "data": PDF_B64} in documents
    assert any(d.get("data") == "plain notes" for d in documents)
    with pytest.raises(anthropic.BadRequestError, match="document sources"):
        claude.messages.create(
            model="sonnet",
            max_tokens=64,
            messages=[
                {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://x"}}]}
            ],
        )


def test_responses_input_files_reach_the_upstream_as_documents(client, fake):
    client.responses.create(
        model="sonnet",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_file", "filename": "r.pdf", "file_data": f"data:application/pdf;base64,{PDF_B64}"},
                    {"type": "input_text", "text": "Summarize."},
                ],
            }
        ],
    )
    blocks = [b for m in fake.received[-1].messages if m["role"] == "user" for b in m["content"]]
    [document] = [b for b in blocks if b.get("type") == "document"]
    assert document["source"]["data"] == PDF_B64 and json.dumps(document).count("r.pdf") == 1
