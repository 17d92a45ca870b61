"""create_app: the one place that wires settings, engine, routers, errors and middleware.

The same app is served on both ports. A turn's errors render in its surface's shape
(``api.pipeline``); every other error (the key check's 401, unknown routes, the model lists)
in the shape its path implies (``api.error_shapes.for_path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from .. import __version__
from ..accounts.book import AccountBook
from ..accounts.budgets import TokenBudgets
from ..accounts.config import AccountsConfig, single_account
from ..accounts.keys import KeyRing
from ..accounts.limits import KeyLimits
from ..accounts.reload import AccountsReloader
from ..accounts.report import key_budgets as key_budgets_view
from ..core.record import RequestRecord
from ..core.turn import Engine
from ..embeddings.engine import EmbeddingEngine
from ..observe.engine import ObservedEngine
from ..observe.hub import Observer
from ..observe.ledger import read_usage
from ..observe.middleware import ObserveMiddleware
from ..observe.routes import router as observe_router
from ..settings import Settings
from ..tap.routes import router as tap_router
from . import auth, handlers
from .admission import key_check
from .anthropic.router import router as anthropic_router
from .drain import Drain, DrainMiddleware
from .ollama.embeddings import router as ollama_embeddings_router
from .ollama.router import router as ollama_router
from .openai.embeddings import router as openai_embeddings_router
from .openai.router import router as openai_router
from .ops import router as ops_router
from .responses.router import router as responses_router
from .responses.store import ResponseStore

log = logging.getLogger(__name__)


def key_budgets(
    accounts: AccountsConfig | None, settings: Settings, observer: Observer, book: AccountBook | None
) -> TokenBudgets | None:
    """The keys' token budgets (None without an accounts file: no named key), counted from the
    usage ledger of the last eight days (so they survive a restart) and charged with every
    served request; kept for every key, as a reload may give one a budget. The same rows give
    the book its keys' window shares of the current 5-hour windows (``accounts.shares``)."""
    if accounts is None or accounts.from_file is None:
        return None
    rows = read_usage(settings.data_dir, 8)
    budgets = TokenBudgets()
    budgets.load(rows)
    if book is not None:
        book.shares.load(rows)

    def charge(record: RequestRecord) -> None:
        if record.key_label and record.usage is not None:
            budgets.charge(record.key_label, record.usage.input_tokens + record.usage.output_tokens, record.started)

    observer.also.append(charge)
    return budgets


def create_app(
    settings: Settings,
    engine: Engine,
    embeddings: EmbeddingEngine | None = None,
    accounts: AccountsConfig | None = None,
) -> FastAPI:
    """Build the app around an engine (``engine.BridgeEngine`` or a test double).

    ``accounts`` (the accounts file) supplies the client keys besides ``BRIDGE_API_KEY``;
    each request's caller (``core.caller.Caller``) is found once, by the key middleware, and
    kept on ``request.state.caller`` for the turn pipeline."""
    keyring = KeyRing(accounts or single_account(), settings.api_keys())
    # What the app reads of the real engine besides turns (a test double may have none of it).
    apply_accounts = getattr(engine, "apply_accounts", None)
    book, tap = getattr(engine, "book", None), getattr(engine, "tap", None)
    # Every turn fills its request's record (observe/): the request log, usage ledger,
    # /metrics and the dashboard read it.
    engine = ObservedEngine(engine)
    observer = Observer(settings, engine.status)

    reloader = None
    if accounts is not None and accounts.from_file:
        # Keys apply at once, accounts through the engine.
        reloader = AccountsReloader(accounts, keyring, apply_accounts=apply_accounts)

    stack = contextlib.AsyncExitStack()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await engine.start()
        if reloader is not None:  # the accounts file read again on SIGHUP and on change
            await stack.enter_async_context(reloader.running_in_background())
        if embeddings is not None and settings.embed_preload:
            # In the background: start-up does not wait; early requests queue behind the load.
            app.state.embed_preload_task = asyncio.create_task(embeddings.preload())
        try:
            yield
        finally:
            await stack.aclose()
            await engine.close()
            observer.ledger.close()
            if embeddings is not None:
                embeddings.close()

    app = FastAPI(title="claude-cli-bridge", version=__version__, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.embeddings = embeddings
    app.state.observer = observer
    app.state.keyring = keyring
    app.state.drain = drain = Drain()  # begun by run.server.DrainingServer on SIGTERM
    app.state.reloader = reloader
    app.state.tap = tap  # what the model saw, on the dashboard (tap.routes)
    app.state.responses_store = ResponseStore.from_settings(settings)  # previous_response_id
    budgets = key_budgets(accounts, settings, observer, book)
    if budgets is not None and book is not None:  # each key's use against its budgets, on the dashboard
        app.state.key_budgets = lambda: key_budgets_view(keyring.named(), budgets, book)
    # Per-request checks every turn passes (api.pipeline): the key's models, limits and budgets.
    app.state.turn_checks = [key_check(KeyLimits(), engine.resolve_model, settings.default_model, budgets)]

    handlers.install(app)
    app.include_router(ops_router)
    app.include_router(openai_router)
    app.include_router(openai_embeddings_router)
    app.include_router(responses_router)
    app.include_router(anthropic_router)
    app.include_router(ollama_router)
    app.include_router(ollama_embeddings_router)
    app.include_router(observe_router)
    app.include_router(tap_router)  # what the model saw (LOG_CONTENT only)

    # A plain ASGI middleware, not @app.middleware("http"): Starlette's BaseHTTPMiddleware
    # hides a client's disconnect from the handlers below it (a non-streaming turn whose
    # client left would run to its end).
    app.add_middleware(auth.CallerMiddleware, keyring=keyring, refuse=handlers.refuse_key)

    origins = settings.cors_origin_list()
    if origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=origins,
            allow_methods=["GET", "POST", "HEAD", "OPTIONS", "DELETE"],
            # "*" mirrors whatever the preflight asks for: the openai SDK sends a growing set of
            # x-stainless-* headers besides Authorization, and origins are already allow-listed.
            allow_headers=["*"],
            expose_headers=[
                "retry-after",
                "x-should-retry",
                "x-conversation-id",
                "x-bridge-process",
                "x-bridge-account",
            ],
        )

    app.add_middleware(DrainMiddleware, drain=drain, refuse=handlers.refuse_draining)
    app.add_middleware(ObserveMiddleware, finish=observer.finish)  # outermost: 401s are recorded too
    return app
