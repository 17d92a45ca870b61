"""The app's error handlers and refusals outside a turn: every error no turn surface rendered
(a validation error, an unknown route, a missing key, a draining server, a bug) in the shape
its path implies (``error_shapes.for_path``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import BridgeError, Draining, InvalidRequest, ModelNotFound, Unauthorized
from . import error_shapes, state
from .common import describe_validation_error


def render_error(request: Request, error: BridgeError) -> JSONResponse:
    """An error no turn surface rendered, in the shape its path implies."""
    return error_shapes.for_path(request.url.path).render(error)


def install(app: FastAPI) -> None:
    """Render every error the routes raise in the API's own shape."""

    @app.exception_handler(BridgeError)
    async def bridge_error(request: Request, exc: BridgeError) -> JSONResponse:
        return render_error(request, exc)

    @app.exception_handler(Exception)
    async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
        # Logged with its traceback by the server; the client gets the API's error shape only.
        return render_error(request, BridgeError("Internal error; see the server log."))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return render_error(request, InvalidRequest(describe_validation_error(exc)))  # type: ignore[arg-type]

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            error: BridgeError = ModelNotFound(f"No route {request.method} {request.url.path} on this server.")
            error.code = "not_found"
        else:
            error = BridgeError(str(exc.detail))
            error.status = exc.status_code
            error.kind = "invalid_request_error"
        return render_error(request, error)


def refuse_key(request: Request) -> Response:
    """The 401 of a request without a valid key; a browser on the dashboard is asked for it."""
    response = render_error(
        request,
        Unauthorized("Missing or invalid API key: send `Authorization: Bearer <key>` (or `x-api-key: <key>`)."),
    )
    if request.url.path.startswith("/dashboard"):
        # A browser asks for the key (as the password; any user name) itself.
        response.headers["www-authenticate"] = 'Basic realm="claude-cli-bridge", charset="UTF-8"'
    return response


def refuse_draining(request: Request) -> JSONResponse:
    """The 503 of a request that arrives while the server drains (SIGTERM)."""
    return render_error(
        request,
        Draining(
            "This server is shutting down; send the request to another server or retry shortly.",
            retry_after=state.settings(request).drain_retry_after_seconds,
        ),
    )
