"""Model names, pure: MODEL_ALIASES and what resolves (other names stay 404), and which
tokenizer an embedding model's name implies (cl100k, offline)."""

from __future__ import annotations

import pytest

from claude_cli_bridge.core.models import resolve_model
from claude_cli_bridge.embeddings.token_ids import decode, encoding_for, load_cl100k
from claude_cli_bridge.errors import InvalidRequest, ModelNotFound
from claude_cli_bridge.settings import parse_model_aliases

pytestmark = pytest.mark.unit


def test_model_aliases_resolve_and_other_names_stay_404():
    aliases = parse_model_aliases(" gpt-4o = sonnet, GPT-4o-mini=haiku ,")
    assert aliases == {"gpt-4o": "sonnet", "gpt-4o-mini": "haiku"}
    assert resolve_model("gpt-4o-mini", "sonnet", {}, aliases) == "haiku"
    assert resolve_model("gpt-4o:latest", "sonnet", {}, aliases) == "sonnet"
    with pytest.raises(ModelNotFound):
        resolve_model("gpt-4-turbo", "sonnet", {}, aliases)
    with pytest.raises(ValueError, match="name=model"):
        parse_model_aliases("gpt-4o")


@pytest.mark.parametrize(
    "model, encoding",
    [
        ("text-embedding-ada-002", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"),
        ("text-embedding-3-large:latest", "cl100k_base"),
        ("openai/text-embedding-3-small", "cl100k_base"),
        ("all-minilm", None),
        ("sentence-transformers/all-MiniLM-L6-v2", None),
        (None, None),
    ],
)
def test_which_tokenizer_a_model_name_implies(model, encoding):
    assert encoding_for(model) == encoding


def test_cl100k_decodes_offline_and_refuses_unknown_ids():
    encoding = load_cl100k()
    assert decode(encoding, [[15339, 1917], encoding.encode("naïve café")]) == ["hello world", "naïve café"]
    with pytest.raises(InvalidRequest, match="100256"):
        decode(encoding, [[1], [100256]])
