"""Embeddings, pure parts: request -> texts and vectors -> response for the OpenAI and Ollama APIs, model names
and limits. No model is loaded here (see test_embeddings_e2e.py for the real one)."""

from __future__ import annotations

import asyncio
import base64
import struct
import time
from pathlib import Path

import pytest

from claude_cli_bridge.api.ollama import embeddings as ollama
from claude_cli_bridge.api.openai import embeddings as openai
from claude_cli_bridge.embeddings.engine import (
    EmbeddingEngine,
    EmbedResult,
    check_dimensions,
    check_limits,
    short_name,
    strip_tag,
)
from claude_cli_bridge.errors import EmbeddingUnavailable, InvalidRequest
from claude_cli_bridge.settings import Settings

pytestmark = pytest.mark.unit

# --- OpenAI: input shapes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("hello", ["hello"]),
        (["a", "b"], ["a", "b"]),
        (["", "b"], ["", "b"]),  # an empty text inside a list is embedded, not refused
        ([7592, 2088], [[7592, 2088]]),  # a flat list of ints is ONE token sequence
        ([[7592], [2088, 102]], [[7592], [2088, 102]]),
        ([[]], [[]]),
    ],
)
def test_openai_input_shapes_normalise_to_texts_and_token_lists(raw, expected):
    assert openai.from_embedding_input(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "'input' is required"),
        ("", "must not be empty"),
        ([], "must not be empty"),
        (3, "got int"),
        ({"text": "x"}, "got an object"),
        ([1, "a"], "mixing int, str"),
        ([[1], "a"], "mixing list, str"),
        ([True, False], "mixing a boolean"),
        ([-1], "'input[0]' must be a non-negative integer token id"),
        ([[1], [2, 2.5]], "'input[1][1]' must be a non-negative integer token id, got 2.5"),
        ([["a"]], "got 'a'"),
    ],
)
def test_openai_bad_input_is_invalid_request_naming_the_problem(raw, message):
    with pytest.raises(InvalidRequest) as caught:
        openai.from_embedding_input(raw)
    assert message in caught.value.message
    assert caught.value.param == "input"


@pytest.mark.parametrize(
    ("items", "decoded", "texts"),
    [
        (["a", "b"], [], ["a", "b"]),
        ([[1, 2]], ["hello"], ["hello"]),
        (["a", [1], "b", [2]], ["one", "two"], ["a", "one", "b", "two"]),
    ],
)
def test_decoded_token_inputs_keep_their_positions(items, decoded, texts):
    assert openai.token_id_inputs(items) == [item for item in items if isinstance(item, list)]
    assert openai.with_decoded(items, decoded) == texts


# --- OpenAI: request fields ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ([], None, "must be a JSON object"),
        ({"input": "x", "encoding_format": "hex"}, "encoding_format", "'float' or 'base64'"),
        ({"input": "x", "dimensions": 0}, "dimensions", "greater than 0"),
        ({"input": "x", "dimensions": "many"}, "dimensions", "valid integer"),
        ({"input": "x", "model": 5}, "model", "valid string"),
    ],
)
def test_openai_bad_fields_are_invalid_request_naming_the_field(body, param, message):
    with pytest.raises(InvalidRequest) as caught:
        openai.parse_embedding_request(body)
    assert caught.value.param == param
    assert message in caught.value.message


def test_openai_unknown_fields_are_accepted():
    parsed = openai.parse_embedding_request({"input": "x", "model": "m", "user": "u", "extra_thing": {"a": 1}})
    assert parsed.input == "x" and parsed.encoding_format is None


@pytest.mark.parametrize(("requested", "actual"), [(None, 384), (384, 384)])
def test_dimensions_equal_to_the_models_or_absent_pass(requested, actual):
    check_dimensions(requested, actual)


def test_other_dimensions_are_refused():
    with pytest.raises(InvalidRequest) as caught:
        check_dimensions(256, 384)
    assert caught.value.param == "dimensions"
    assert "384" in caught.value.message and "256" in caught.value.message


# --- OpenAI: response ---------------------------------------------------------------------------


@pytest.mark.parametrize("vector", [[0.0], [1.0, -0.5, 0.25], [0.1, 1e-8, -3.4e38]])
def test_base64_is_little_endian_float32(vector):
    raw = base64.b64decode(openai.encode_base64(vector))
    assert len(raw) == 4 * len(vector)
    decoded = struct.unpack(f"<{len(vector)}f", raw)
    assert decoded == pytest.approx(vector, rel=1e-6)


@pytest.mark.parametrize(
    ("encoding_format", "as_sent"),
    [
        (None, lambda v: v),
        ("float", lambda v: v),
        ("base64", openai.encode_base64),
    ],
)
def test_openai_response_lists_vectors_in_order_with_usage(encoding_format, as_sent):
    vectors = [[0.5, 0.5], [1.0, 0.0]]
    body = openai.to_embedding_response(
        vectors, [4, 9], model="text-embedding-3-small", encoding_format=encoding_format
    )
    assert body == {
        "object": "list",
        "data": [
            {"object": "embedding", "index": 0, "embedding": as_sent([0.5, 0.5])},
            {"object": "embedding", "index": 1, "embedding": as_sent([1.0, 0.0])},
        ],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 13, "total_tokens": 13},
    }


# --- Ollama ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "texts"),
    [
        (None, []),  # no input: load the model only, as Ollama does
        ("", []),
        ([], []),
        ("hi", ["hi"]),
        (["a", "", "b"], ["a", "", "b"]),
    ],
)
def test_ollama_input_normalises_to_texts(raw, texts):
    assert ollama.from_embed_input(raw) == texts


@pytest.mark.parametrize("raw", [3, [1, 2], [["a"]], {"a": "b"}, ["a", None]])
def test_ollama_input_of_other_types_is_refused(raw):
    with pytest.raises(InvalidRequest, match="invalid input type"):
        ollama.from_embed_input(raw)


@pytest.mark.parametrize(
    ("model", "body", "message"),
    [
        (ollama.EmbedRequest, {"input": "x"}, "model is required"),
        (ollama.EmbedRequest, {"model": " ", "input": "x"}, "model is required"),
        (ollama.EmbeddingsRequest, {"prompt": "x"}, "model is required"),
        (ollama.EmbedRequest, {"model": "m", "truncate": "perhaps"}, "invalid truncate"),
        (ollama.EmbeddingsRequest, {"model": "m", "prompt": ["x"]}, "invalid prompt"),
        (ollama.EmbedRequest, "text", "must be a JSON object"),
    ],
)
def test_ollama_bad_bodies_are_invalid_request(model, body, message):
    with pytest.raises(InvalidRequest, match=message):
        ollama.parse_body(model, body)


def test_ollama_ignores_options_keep_alive_and_unknown_fields():
    parsed = ollama.parse_body(
        ollama.EmbedRequest,
        {"model": "all-minilm", "input": "x", "options": {"num_ctx": 512}, "keep_alive": "5m", "other": 1},
    )
    assert parsed.model == "all-minilm" and parsed.truncate is None


def test_ollama_embed_response_has_integer_durations_and_token_count():
    result = EmbedResult(vectors=[[0.6, 0.8]], token_counts=[5], load_ns=0, total_ns=1500)
    assert ollama.to_embed_response("all-minilm:latest", result, load_ns=1200, total_ns=3000) == {
        "model": "all-minilm:latest",
        "embeddings": [[0.6, 0.8]],
        "total_duration": 3000,
        "load_duration": 1200,
        "prompt_eval_count": 5,
    }


@pytest.mark.parametrize(
    ("vectors", "embedding"),
    [([[0.6, 0.8]], [0.6, 0.8]), ([], [])],
)
def test_ollama_legacy_response_is_one_vector_or_empty(vectors, embedding):
    result = EmbedResult(vectors=vectors, token_counts=[3] * len(vectors), load_ns=0, total_ns=1)
    assert ollama.to_embeddings_response(result) == {"embedding": embedding}


# --- names and limits --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "untagged"),
    [
        ("all-minilm", "all-minilm"),
        ("all-minilm:latest", "all-minilm"),
        ("nomic-embed-text:v1.5", "nomic-embed-text"),
        ("host:8080/library/model", "host:8080/library/model"),
        ("host:8080/library/model:q4", "host:8080/library/model"),
    ],
)
def test_strip_tag_removes_only_a_trailing_ollama_tag(name, untagged):
    assert strip_tag(name) == untagged


@pytest.mark.parametrize(
    ("name", "short"),
    [
        ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"),
        ("BAAI/bge-small-en-v1.5", "bge-small-en-v1.5"),
        ("x", "x"),
    ],
)
def test_short_name_drops_the_organisation(name, short):
    assert short_name(name) == short


def _settings(tmp_path: Path, **fields) -> Settings:
    return Settings(embed_cache_dir=tmp_path / "cache", **fields)


def test_default_engine_serves_the_model_its_short_name_and_the_aliases_with_any_tag(tmp_path):
    engine = EmbeddingEngine(_settings(tmp_path))
    names = engine.model_names()
    assert names[0] == "sentence-transformers/all-MiniLM-L6-v2"
    assert "all-MiniLM-L6-v2" in names and "text-embedding-3-small" in names and "all-minilm" in names
    for served in (
        "sentence-transformers/all-MiniLM-L6-v2",
        "all-minilm-l6-v2:latest",
        "text-embedding-ada-002",
        "all-minilm:latest",
        "nomic-embed-text:v1.5",
        "MXBAI-EMBED-LARGE",
    ):
        assert engine.serves(served), served
    for other in ("sonnet", "gpt-4o", "all-minilm-2", ""):
        assert not engine.serves(other), other
    assert not engine.loaded and engine.dimensions is None
    engine.close()


@pytest.mark.parametrize(
    ("fields", "canonical"),
    [
        ({"embed_model_path": "/models/my-minilm"}, "my-minilm"),
        ({"embed_model_path": "/models/my-minilm", "embed_model": "team/minilm-int8"}, "team/minilm-int8"),
    ],
)
def test_a_local_model_is_named_after_its_directory_unless_embed_model_says(tmp_path, fields, canonical):
    engine = EmbeddingEngine(_settings(tmp_path, embed_aliases="text-embedding-3-small", **fields))
    assert engine.model_names()[0] == canonical
    assert engine.serves(canonical + ":latest") and engine.serves("text-embedding-3-small")
    assert not engine.serves("all-minilm")
    engine.close()


@pytest.mark.parametrize(
    ("lengths", "message"),
    [
        ([1, 2, 3, 4], "Too many inputs: 4; at most 3"),
        ([1, 11, 2], "input[1] has 11 characters; at most 10"),
    ],
)
def test_limits_refuse_too_many_or_too_long_inputs(lengths, message):
    with pytest.raises(InvalidRequest, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_limits(lengths, max_inputs=3, max_chars=10)


@pytest.mark.parametrize("lengths", [[], [10, 10, 10], [0]])
def test_limits_pass_inputs_within_bounds(lengths):
    check_limits(lengths, max_inputs=3, max_chars=10)


def test_limits_are_checked_before_the_model_is_loaded(tmp_path):
    """A request over the limits is a 400 even when the model could never load."""
    engine = EmbeddingEngine(_settings(tmp_path, embed_model_path=str(tmp_path / "missing"), embed_max_inputs=2))
    with pytest.raises(InvalidRequest):
        asyncio.run(engine.embed(["a", "b", "c"]))
    with pytest.raises(InvalidRequest):
        asyncio.run(engine.decode_token_ids([[1], [2], [3]]))
    assert asyncio.run(engine.embed([])).vectors == []
    with pytest.raises(EmbeddingUnavailable, match="EMBED_MODEL_PATH"):
        asyncio.run(engine.embed(["a"]))
    engine.close()


def test_a_missing_local_file_is_named_in_the_error(tmp_path):
    model_dir = tmp_path / "half-model"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes(b"")
    (model_dir / "tokenizer.json").write_text("{}")
    engine = EmbeddingEngine(_settings(tmp_path, embed_model_path=str(model_dir)))
    with pytest.raises(EmbeddingUnavailable) as caught:
        asyncio.run(engine.load())
    assert "tokenizer_config.json, special_tokens_map.json" in caught.value.message
    # Remembered: the next call fails the same way at once, without touching the disk again.
    with pytest.raises(EmbeddingUnavailable, match=r"special_tokens_map\.json"):
        asyncio.run(engine.load())
    engine.close()


def test_a_hub_model_missing_from_the_cache_offline_fails_at_once_saying_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = EmbeddingEngine(_settings(tmp_path))
    started = time.monotonic()
    with pytest.raises(EmbeddingUnavailable) as caught:
        asyncio.run(engine.embed(["x"]))
    assert time.monotonic() - started < 10  # fastembed's own retries would sleep 3 s and 9 s
    assert "HF_HUB_OFFLINE" in caught.value.message and "EMBED_MODEL_PATH" in caught.value.message
    engine.close()
