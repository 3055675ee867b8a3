"""Every error the server answers is one JSON object, ``{"error": "<one line>"}``, no traceback.

- Bad input (a missing field, a value out of range, an image Pillow cannot read, a decompression
  bomb, an empty prompt) is a 4xx: 422 for what the request says, 413 for a body over the upload
  limit, 404 for an unknown job or file, 503 while the queue is full.
- Anything else is the server's fault: a 500 with one line; the traceback goes to the log only.

:class:`BodyLimit` refuses a request body over the limit before it is parsed: at once from its
``Content-Length``, or as soon as a body sent without one grows past the limit.
"""

from __future__ import annotations

import json
import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..errors import LayerdecompError
from .jobs import QueueFull

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    """``{"error": message}`` (whitespace collapsed to one line) with ``status``."""
    return JSONResponse({"error": " ".join(str(message).split()) or "error"}, status_code=status)


def _where(loc) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return parts[0] if parts else "request"


def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = []
    for error in exc.errors():
        problems.append(f"{_where(error.get('loc', ()))}: {error.get('msg', 'invalid')}")
    return error_response(422, "; ".join(dict.fromkeys(problems)))


def _http(request: Request, exc: HTTPException) -> JSONResponse:
    return error_response(exc.status_code, exc.detail)


def _user(request: Request, exc: LayerdecompError) -> JSONResponse:
    return error_response(503 if isinstance(exc, QueueFull) else 422, str(exc))


def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def install(app: FastAPI, max_body: int) -> None:
    """Register the JSON error handlers and the body limit on ``app``."""
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(LayerdecompError, _user)
    app.add_exception_handler(Exception, _internal)
    app.add_middleware(BodyLimit, limit=max_body)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 JSON error, unparsed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, int(limit)

    def _message(self) -> bytes:
        mb = self.limit / 2**20
        return json.dumps(
            {"error": f"the upload is over this server's limit of {mb:g} MB ({self.limit} bytes)"}
        ).encode()

    async def _refuse(self, send) -> None:
        body = self._message()
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(send)
        received, over = 0, False

        async def counted():
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    over = True  # stop the parser: what the app answers now is replaced
                    return {"type": "http.disconnect"}
            return message

        replaced = False

        async def guarded(message):
            nonlocal replaced
            if not over:
                return await send(message)
            if not replaced:
                replaced = True
                await self._refuse(send)

        try:
            await self.app(scope, counted, guarded)
        except Exception:
            if not over:
                raise
            if not replaced:
                await self._refuse(send)


__all__ = ["BodyLimit", "error_response", "install"]
