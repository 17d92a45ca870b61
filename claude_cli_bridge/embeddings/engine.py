"""The local embedding model: fastembed (ONNX Runtime, no torch) on the CPU.

Contract (what the API layers rely on):

* ``EmbeddingEngine(settings)`` costs nothing: fastembed is imported and the model loaded on the
  first ``load()`` / ``embed()`` / ``decode_token_ids()``, or at start-up through ``preload()``.
* ``serves(name)`` is true for the configured model, its short name (``all-MiniLM-L6-v2``) and
  every name in ``EMBED_ALIASES``, case-insensitively, with or without an Ollama tag
  (``all-minilm:latest``). ``model_names()`` lists them, canonical name first.
* ``await embed(texts)`` returns one L2-normalised vector per text, in order, with the number of
  tokens the model actually saw for each (after truncation to its context). Inputs longer than
  the context are truncated, unless ``truncate=False``, which raises ``InvalidRequest``.
* ``await decode_token_ids(ids, model)`` turns token-id inputs back into text with the tokenizer
  the client's model name implies (``token_ids``): cl100k_base for OpenAI's embedding names,
  the served model's own for the rest.
* Limits (``EMBED_MAX_INPUTS``, ``EMBED_MAX_CHARS``) are checked before anything is loaded and
  raise ``InvalidRequest``; a model that cannot be loaded raises ``EmbeddingUnavailable`` with a
  message saying how to fix it, and the failure is remembered for ``RETRY_AFTER_SECONDS`` so a
  burst of requests does not retry a slow download each.

Inference runs on one dedicated worker thread: requests queue there instead of running side by
side, because ONNX Runtime already spreads one batch over every core and two concurrent runs
would only fight over them. Its ONNX session sleeps between runs instead of spinning, so idle
inference threads leave the cores to the CLI processes (see ``_stop_spinning``). Within a request,
texts are sorted by token count before batching so that each batch pads to a similar length.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import EmbeddingUnavailable, InvalidRequest
from . import token_ids

if TYPE_CHECKING:
    from ..settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Files an ``EMBED_MODEL_PATH`` directory must hold (a sentence-transformers ONNX export).
LOCAL_MODEL_FILES = ("model.onnx", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
#: How long a failed load is reported again without retrying it.
RETRY_AFTER_SECONDS = 30.0
#: Texts per ONNX run. On 2 cores (bench/bench_embeddings.py --sweep) 32 used the CPU best for
#: short texts (408 texts per CPU-second, against 344 at 64 and 276 at 256), and bigger batches of
#: long texts cost memory: attention grows with batch size times tokens squared.
DEFAULT_BATCH_SIZE = 32
#: How long to wait for the model hub before declaring it unreachable.
HUB_PROBE_TIMEOUT_SECONDS = 5.0

_OFFLINE_HINT = (
    "To run offline, set EMBED_MODEL_PATH to a directory holding model.onnx, tokenizer.json, "
    "tokenizer_config.json and special_tokens_map.json of a mean-pooled sentence-transformers ONNX export"
)


@dataclass(frozen=True)
class EmbedResult:
    """One embeddings call: vectors in input order and what it cost."""

    vectors: list[list[float]]
    #: Tokens the model saw per input, special tokens included, after truncation.
    token_counts: list[int]
    #: Nanoseconds this call spent loading the model (0 when it was already loaded).
    load_ns: int
    #: Nanoseconds from the call to its result, queueing and loading included.
    total_ns: int

    @property
    def prompt_tokens(self) -> int:
        return sum(self.token_counts)


@dataclass
class _Loaded:
    """A loaded model and what was learnt about it while loading."""

    model: Any  # fastembed.TextEmbedding
    tokenizer: Any  # tokenizers.Tokenizer, with the model's truncation and padding
    dimensions: int
    max_tokens: int
    vocab_size: int


def strip_tag(name: str) -> str:
    """``all-minilm:latest`` -> ``all-minilm``; a ``:`` before the last ``/`` is not a tag."""
    head, sep, tag = name.rpartition(":")
    if sep and "/" not in tag:
        return head
    return name


def short_name(name: str) -> str:
    """``sentence-transformers/all-MiniLM-L6-v2`` -> ``all-MiniLM-L6-v2``."""
    return name.rstrip("/").rsplit("/", 1)[-1]


def check_limits(lengths: list[int], *, max_inputs: int, max_chars: int, unit: str = "characters") -> None:
    """Refuse a request with more inputs than ``max_inputs`` or an input longer than ``max_chars``.

    ``lengths`` holds one length per input (characters of a text, or ids of a token-id input).
    """
    if len(lengths) > max_inputs:
        raise InvalidRequest(
            f"Too many inputs: {len(lengths)}; at most {max_inputs} per request (EMBED_MAX_INPUTS).",
            param="input",
        )
    for index, length in enumerate(lengths):
        if length > max_chars:
            raise InvalidRequest(
                f"input[{index}] has {length} {unit}; at most {max_chars} are accepted (EMBED_MAX_CHARS).",
                param="input",
            )


def check_dimensions(requested: int | None, actual: int) -> None:
    """Refuse a ``dimensions`` other than the model's: the model cannot shorten its vectors
    (both surfaces accept the field)."""
    if requested is not None and requested != actual:
        raise InvalidRequest(
            f"This model returns {actual}-dimensional vectors and cannot shorten them; "
            f"'dimensions' must be {actual} or left out (got {requested}).",
            param="dimensions",
        )


class EmbeddingEngine:
    """The configured embedding model, loaded on first use and run on one worker thread."""

    def __init__(self, settings: Settings, *, batch_size: int = DEFAULT_BATCH_SIZE, threads: int | None = None):
        """``threads``: ONNX Runtime intra-op threads; None lets it use every physical core."""
        self._settings = settings
        self._batch_size = batch_size
        self._threads = threads
        self._path = settings.embed_model_path.strip()
        self._names = self._configured_names(settings)
        self._served = {strip_tag(name).lower() for name in self._names}
        # One thread: see the module docstring. It also serialises loading, so no lock is needed.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embeddings")
        self._loaded: _Loaded | None = None
        self._failure: EmbeddingUnavailable | None = None
        self._failed_at = 0.0

    # --- names ------------------------------------------------------------------------

    def _configured_names(self, settings: Settings) -> list[str]:
        canonical = settings.embed_model.strip()
        if self._path and "embed_model" not in settings.model_fields_set:
            # A local directory is named after itself unless EMBED_MODEL labels it explicitly:
            # the default EMBED_MODEL names a hub model the directory may well not be.
            canonical = Path(self._path).resolve().name
        names = [canonical, short_name(canonical)]
        names += settings.embed_alias_list()
        unique: list[str] = []
        seen: set[str] = set()
        for name in names:
            if name.lower() not in seen:
                seen.add(name.lower())
                unique.append(name)
        return unique

    def model_names(self) -> list[str]:
        """Names to list in /v1/models and /api/tags, untagged; the first is the canonical one."""
        return list(self._names)

    def serves(self, name: str) -> bool:
        return strip_tag(name.strip()).lower() in self._served

    # --- state --------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    @property
    def dimensions(self) -> int | None:
        """Length of every vector, known once the model is loaded (None before)."""
        return self._loaded.dimensions if self._loaded else None

    @property
    def max_tokens(self) -> int | None:
        """Context of the model in tokens; longer inputs are truncated (None before loading)."""
        return self._loaded.max_tokens if self._loaded else None

    async def load(self) -> int:
        """Load the model if it is not loaded yet; return the nanoseconds spent doing so.

        Raises ``EmbeddingUnavailable``.
        """
        return await self._run(self._ensure_loaded)

    async def preload(self) -> bool:
        """Load at start-up (EMBED_PRELOAD). A failure is logged, not raised: chat keeps working."""
        try:
            await self.load()
        except EmbeddingUnavailable as exc:
            log.warning("embedding model not preloaded: %s", exc.message)
            return False
        return True

    def close(self) -> None:
        """Stop the worker thread; queued calls are cancelled."""
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._loaded = None

    # --- work ---------------------------------------------------------------------------

    async def embed(self, texts: list[str], *, truncate: bool = True) -> EmbedResult:
        """Embed ``texts``; see the module docstring for limits, truncation and errors."""
        start = time.perf_counter_ns()
        check_limits([len(text) for text in texts], max_inputs=self._max_inputs, max_chars=self._max_chars)
        if not texts:
            return EmbedResult(vectors=[], token_counts=[], load_ns=0, total_ns=time.perf_counter_ns() - start)
        load_ns, vectors, counts = await self._run(self._embed_sync, list(texts), truncate)
        return EmbedResult(
            vectors=vectors, token_counts=counts, load_ns=load_ns, total_ns=time.perf_counter_ns() - start
        )

    async def decode_token_ids(self, ids: list[list[int]], model: str | None = None) -> list[str]:
        """Turn token-id inputs into text with the tokenizer ``model`` (the name the client
        used) implies: tiktoken's cl100k_base for OpenAI's embedding models, else the served
        model's own tokenizer (special tokens dropped)."""
        check_limits(
            [len(one) for one in ids], max_inputs=self._max_inputs, max_chars=self._max_chars, unit="token ids"
        )
        if not ids:
            return []
        if token_ids.encoding_for(model) == token_ids.CL100K:
            encoding = await self._run(token_ids.load_cl100k)
            return token_ids.decode(encoding, [list(one) for one in ids])
        return await self._run(self._decode_sync, [list(one) for one in ids])

    @property
    def _max_inputs(self) -> int:
        return self._settings.embed_max_inputs

    @property
    def _max_chars(self) -> int:
        return self._settings.embed_max_chars

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    # --- on the worker thread -------------------------------------------------------------

    def _embed_sync(self, texts: list[str], truncate: bool) -> tuple[int, list[list[float]], list[int]]:
        load_ns = self._ensure_loaded()
        loaded = self._loaded
        assert loaded is not None
        encodings = loaded.tokenizer.encode_batch(texts)
        counts = [sum(encoding.attention_mask) for encoding in encodings]
        if not truncate:
            too_long = [index for index, encoding in enumerate(encodings) if encoding.overflowing]
            if too_long:
                raise InvalidRequest(
                    f"input[{too_long[0]}] exceeds the model's context of {loaded.max_tokens} tokens "
                    "(input length exceeds maximum context length); send truncate=true to cut it",
                    param="input",
                )
        # Shortest first, so each batch pads to about the same length; results go back in order.
        order = sorted(range(len(texts)), key=counts.__getitem__)
        vectors: list[list[float]] = [[] for _ in texts]
        embedded = loaded.model.embed([texts[index] for index in order], batch_size=self._batch_size)
        for index, vector in zip(order, embedded, strict=False):
            vectors[index] = vector.tolist()
        return load_ns, vectors, counts

    def _decode_sync(self, ids: list[list[int]]) -> list[str]:
        self._ensure_loaded()
        loaded = self._loaded
        assert loaded is not None
        for index, one in enumerate(ids):
            bad = next((token for token in one if not 0 <= token < loaded.vocab_size), None)
            if bad is not None:
                raise InvalidRequest(
                    f"input[{index}] holds token id {bad}, outside this model's vocabulary of "
                    f"{loaded.vocab_size}; token ids must come from the model's own tokenizer, or from "
                    "cl100k_base under an OpenAI model name (text-embedding-3-small...)",
                    param="input",
                )
        decoded: list[str] = loaded.tokenizer.decode_batch(ids, skip_special_tokens=True)
        return decoded

    def _ensure_loaded(self) -> int:
        if self._loaded is not None:
            return 0
        if self._failure is not None and time.monotonic() - self._failed_at < RETRY_AFTER_SECONDS:
            raise EmbeddingUnavailable(self._failure.message, retry_after=self._failure.retry_after)
        start = time.perf_counter_ns()
        try:
            self._loaded = self._open_local(Path(self._path)) if self._path else self._open_named()
        except EmbeddingUnavailable as exc:
            self._failure, self._failed_at = exc, time.monotonic()
            log.error("embedding model unavailable: %s", exc.message)
            raise
        self._failure = None
        elapsed = time.perf_counter_ns() - start
        log.info(
            "embedding model %s loaded in %.0f ms (%d dimensions, %d-token context)",
            self._names[0],
            elapsed / 1e6,
            self._loaded.dimensions,
            self._loaded.max_tokens,
        )
        return elapsed

    def _open_local(self, path: Path) -> _Loaded:
        """Register an EMBED_MODEL_PATH directory as a fastembed custom model and load it."""
        if not path.is_dir():
            raise EmbeddingUnavailable(f"EMBED_MODEL_PATH={path} is not a directory. {_OFFLINE_HINT}.")
        missing = [name for name in LOCAL_MODEL_FILES if not (path / name).is_file()]
        if missing:
            raise EmbeddingUnavailable(f"EMBED_MODEL_PATH={path} lacks {', '.join(missing)}. {_OFFLINE_HINT}.")
        # A local model must never wait on the network: fastembed reads this flag on every load.
        os.environ["HF_HUB_OFFLINE"] = "1"
        fastembed = _import_fastembed()
        pooling_name, dim = _inspect_onnx(path / "model.onnx")
        from fastembed.common.model_description import ModelSource, PoolingType

        # fastembed keeps custom models in a process-wide registry keyed by name: derive the name
        # from the directory so two engines (tests, reloads) on the same directory share the entry.
        name = "claude-cli-bridge/local-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
        registered = {model["model"].lower() for model in fastembed.TextEmbedding.list_supported_models()}
        if name.lower() not in registered:
            fastembed.TextEmbedding.add_custom_model(
                model=name,
                # 3-D output (token states) is mean-pooled; a 2-D output is already a sentence vector.
                pooling=PoolingType.MEAN if pooling_name == "mean" else PoolingType.DISABLED,
                normalization=True,
                sources=ModelSource(hf=name),  # never fetched: specific_model_path wins
                dim=dim,
                model_file="model.onnx",
                description=f"local ONNX model from {path}",
            )
        try:
            model = fastembed.TextEmbedding(
                name,
                cache_dir=str(self._cache_dir()),
                threads=self._threads,
                specific_model_path=str(path),
                local_files_only=True,
            )
        except Exception as exc:  # onnxruntime and tokenizers raise many types; all mean "bad files"
            raise EmbeddingUnavailable(f"Cannot load the model in EMBED_MODEL_PATH={path}: {exc}") from exc
        return self._finish(model, path / "model.onnx")

    def _open_named(self) -> _Loaded:
        """Load EMBED_MODEL from the cache, downloading it once if the hub is reachable."""
        name = self._settings.embed_model.strip()
        fastembed = _import_fastembed()
        known = {model["model"].lower() for model in fastembed.TextEmbedding.list_supported_models()}
        if name.lower() not in known:
            raise EmbeddingUnavailable(
                f"EMBED_MODEL={name} is not a fastembed text model; pick one listed by "
                "fastembed.TextEmbedding.list_supported_models(). " + _OFFLINE_HINT + "."
            )
        cache_dir = str(self._cache_dir())
        try:
            # Cache first: no network at all for a model downloaded before.
            cached = _quietly(
                lambda: fastembed.TextEmbedding(name, cache_dir=cache_dir, threads=self._threads, local_files_only=True)
            )
        except Exception as exc:
            log.info("embedding model %s not in cache %s (%s); downloading it", name, cache_dir, exc)
        else:
            return self._finish(cached)
        if _truthy(os.environ.get("HF_HUB_OFFLINE")):
            raise EmbeddingUnavailable(
                f"Embedding model {name} is not in the cache ({cache_dir}) and HF_HUB_OFFLINE is set. "
                f"Download it once while online, or: {_OFFLINE_HINT}."
            )
        # fastembed retries an unreachable hub with sleeps of 3 s and 9 s; ask the hub once, briefly,
        # so an offline machine gets its 503 in seconds.
        unreachable = _probe_hub()
        if unreachable:
            raise EmbeddingUnavailable(
                f"Cannot download embedding model {name}: the model hub is unreachable ({unreachable}). "
                f"Connect once so it is cached in {cache_dir}, or: {_OFFLINE_HINT}.",
                retry_after=RETRY_AFTER_SECONDS,
            )
        try:
            model = fastembed.TextEmbedding(name, cache_dir=cache_dir, threads=self._threads)
        except Exception as exc:
            raise EmbeddingUnavailable(f"Cannot download embedding model {name}: {exc}. {_OFFLINE_HINT}.") from exc
        return self._finish(model)

    def _cache_dir(self) -> Path:
        cache_dir = Path(self._settings.embed_cache_dir).expanduser()
        try:
            cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise EmbeddingUnavailable(f"Cannot create EMBED_CACHE_DIR={cache_dir}: {exc}") from exc
        return cache_dir

    def _finish(self, model: Any, model_file: Path | None = None) -> _Loaded:
        """Take the tokenizer out of a loaded model and measure the vector length once.

        The probe also warms ONNX Runtime up, so the first real request is not the slow one.
        """
        _stop_spinning(model, model_file, self._threads)
        tokenizer = getattr(model.model, "tokenizer", None)
        if tokenizer is None:
            raise EmbeddingUnavailable(
                f"Embedding model {self._names[0]} exposes no tokenizer; pick a transformer ONNX model."
            )
        try:
            probe = next(iter(model.embed(["dimension probe"])))
        except Exception as exc:
            raise EmbeddingUnavailable(f"Embedding model {self._names[0]} failed a test run: {exc}") from exc
        truncation = tokenizer.truncation or {}
        return _Loaded(
            model=model,
            tokenizer=tokenizer,
            dimensions=int(probe.shape[-1]),
            max_tokens=int(truncation.get("max_length", 0)),
            vocab_size=tokenizer.get_vocab_size(with_added_tokens=True),
        )


# --- helpers kept out of the class: no state --------------------------------------------------


def _import_fastembed() -> Any:
    # Imported here, not at module top: it costs most of a second, which only users of
    # embeddings should pay.
    try:
        import fastembed
    except ImportError as exc:
        raise EmbeddingUnavailable(f"fastembed is not installed ({exc}); run `pip install fastembed`.") from exc
    return fastembed


def _inspect_onnx(model_file: Path) -> tuple[str, int]:
    """Return the pooling the first output needs ("mean" for token states, "none") and its width.

    fastembed wants the width before it loads a custom model; reading the graph's declared output
    shape costs a session without optimisations, a fraction of the real load.
    """
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        session = ort.InferenceSession(str(model_file), sess_options=options, providers=["CPUExecutionProvider"])
        shape = session.get_outputs()[0].shape
    except Exception as exc:
        raise EmbeddingUnavailable(f"{model_file} is not a loadable ONNX model: {exc}") from exc
    width = shape[-1] if shape else None
    if len(shape) not in (2, 3) or not isinstance(width, int):
        raise EmbeddingUnavailable(
            f"{model_file} has output shape {shape}; expected token states [batch, tokens, width] "
            "or sentence vectors [batch, width] with a fixed width"
        )
    return ("mean" if len(shape) == 3 else "none"), width


def _stop_spinning(model: Any, model_file: Path | None, threads: int | None) -> None:
    """Swap fastembed's ONNX session for one whose idle threads sleep instead of spinning.

    ONNX Runtime's worker threads busy-wait between runs by default, and fastembed offers no way
    to turn that off. On a machine shared with the CLI processes the spinning threads steal the
    cores the work needs: on 2 loaded cores (bench/bench_embeddings.py, load average ~10) the
    median for 256 short texts went from 68 to 312 texts/s, and texts per CPU-second from 223
    to 376, with spinning off. The swap reaches into fastembed's model object (its ``model``
    session and, for hub models, ``_model_dir``); if those are not where fastembed 0.9 keeps
    them, fastembed's own session stays and only this tuning is lost.
    """
    inner: Any = getattr(model, "model", None)
    session = getattr(inner, "model", None)
    if model_file is None:
        model_dir = getattr(inner, "_model_dir", None)
        relative = getattr(getattr(inner, "model_description", None), "model_file", None)
        model_file = Path(model_dir) / relative if model_dir and relative else None
    if session is None or model_file is None or not model_file.is_file():
        log.debug("embedding model: keeping fastembed's ONNX session (spinning threads)")
        return
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = threads
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        inner.model = ort.InferenceSession(str(model_file), sess_options=options, providers=session.get_providers())
    except Exception as exc:
        log.warning("embedding model: keeping fastembed's ONNX session (%s)", exc)


def _quietly(build: Any) -> Any:
    """Run ``build`` with fastembed's loguru errors muted: a cache miss is expected, not an error."""
    try:
        from loguru import logger
    except ImportError:
        return build()
    logger.disable("fastembed")
    try:
        return build()
    finally:
        logger.enable("fastembed")


def _probe_hub() -> str | None:
    """None if the Hugging Face hub (or HF_ENDPOINT) answers quickly, else why not."""
    import httpx

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    try:
        httpx.head(endpoint + "/api/models", timeout=HUB_PROBE_TIMEOUT_SECONDS, follow_redirects=True)
    except httpx.HTTPError as exc:
        return f"{endpoint}: {exc.__class__.__name__}: {exc}"
    return None


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "TRUE", "YES", "ON"}
