"""The FastAPI application: OpenAI-compatible routes, health, metrics, the chat page, and an accurate OpenAPI schema.

    app = create_app(ServeContext.from_engine(engine, "my-model"), api_key=None)

Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models[/{id}], GET /health, GET /metrics,
GET / (the chat page, static files under /static), GET /openapi.json and /docs.
An ASGI middleware in front of everything enforces the optional API key (`Authorization: Bearer K`, on /v1 and
/metrics) and the request size limit (413), and counts answers by route and status for the metrics.
"""

from __future__ import annotations

import asyncio
import secrets
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles

from qwq.serve.chat import chat_completion
from qwq.serve.completions import completion
from qwq.serve.errors import (AUTHENTICATION, INVALID_REQUEST, BodyTooLarge, error_body, error_responses,
                              install_error_handlers)
from qwq.serve.protocol import (ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, Completion,
                                CompletionRequest, Health, ModelCard, ModelList)
from qwq.serve.service import ClientGone, ServeContext

DEFAULT_MAX_BODY_BYTES = 8 << 20
STATIC = resources.files("qwq.serve").joinpath("static")
ROUTES = ("/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/metrics", "/")
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


class GateMiddleware:
    """API key, body size limit and per-route answer counts, before any route code runs."""

    def __init__(self, app: Any, ctx: ServeContext, api_key: str | None, max_body_bytes: int) -> None:
        self.app, self.ctx, self.api_key, self.max_body_bytes = app, ctx, api_key, max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope.get("path", "")
        route = next((r for r in ROUTES if path == r or (r == "/v1/models" and path.startswith(r + "/"))), "other")
        status_seen: list[int] = []

        async def counting_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(message["status"])
            await send(message)

        try:
            rejection = self._reject(scope)
            if rejection is not None:
                return await rejection(scope, receive, counting_send)
            await self.app(scope, self._limited(receive), counting_send)
        finally:
            self.ctx.metrics.request_done(route, status_seen[0] if status_seen else 499)

    def _reject(self, scope: dict) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = scope.get("path", "")
        if self.api_key is not None and (path.startswith("/v1/") or path == "/metrics"):
            auth = headers.get("authorization", "")
            scheme, _, token = auth.partition(" ")
            if scheme.lower() != "bearer" or not secrets.compare_digest(token.strip().encode(), self.api_key.encode()):
                message = "missing API key: send 'Authorization: Bearer <key>'" if not auth else "invalid API key"
                return JSONResponse(error_body(message, AUTHENTICATION, None, "invalid_api_key"), status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None:
            if not length.isdigit():
                return JSONResponse(error_body("invalid Content-Length header", INVALID_REQUEST), status_code=400)
            if int(length) > self.max_body_bytes:
                return self._too_large()
        return None

    def _too_large(self) -> JSONResponse:
        error = BodyTooLarge(self.max_body_bytes)
        return JSONResponse(error.body(), status_code=error.status)

    def _limited(self, receive: Any) -> Any:
        """A chunked body without Content-Length is counted as it arrives."""
        seen = 0
        limit = self.max_body_bytes

        async def wrapped() -> dict:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(limit)
            return message

        return wrapped


def create_app(ctx: ServeContext, *, api_key: str | None = None, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               title: str = "qwq") -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        await ctx.abort_all()
        await asyncio.to_thread(ctx.aengine.shutdown)

    app = FastAPI(title=f"{title} OpenAI-compatible API", version="1", lifespan=lifespan,
                  description="Chat and text completions from a qwq engine: reasoning split into "
                              "`reasoning_content`, Hermes tool calls, reasoning controls, Prometheus metrics.")
    install_error_handlers(app)

    async def respond(result: Any) -> Response:
        if isinstance(result, dict):
            return JSONResponse(result)
        return StreamingResponse(result, media_type="text/event-stream", headers=SSE_HEADERS)

    @app.post("/v1/chat/completions", response_model=ChatCompletion, tags=["openai"],
              responses={200: {"description": "a chat completion (JSON), or with `stream` a text/event-stream of "
                                              "chat.completion.chunk objects ending with `data: [DONE]`"},
                         **error_responses(400, 404, 413, 503)})
    async def chat_completions(body: ChatCompletionRequest, request: Request) -> Response:
        try:
            return await respond(await chat_completion(ctx, body, request))
        except ClientGone:
            return Response(status_code=499)

    @app.post("/v1/completions", response_model=Completion, tags=["openai"],
              responses={200: {"description": "a text completion, or with `stream` a text/event-stream"},
                         **error_responses(400, 404, 413, 503)})
    async def completions(body: CompletionRequest, request: Request) -> Response:
        try:
            return await respond(await completion(ctx, body, request))
        except ClientGone:
            return Response(status_code=499)

    def card() -> dict:
        return {"id": ctx.model_id, "object": "model", "created": ctx.created, "owned_by": "qwq",
                "max_model_len": ctx.max_model_len}

    @app.get("/v1/models", response_model=ModelList, tags=["openai"])
    async def models() -> dict:
        return {"object": "list", "data": [card()]}

    @app.get("/v1/models/{model_id:path}", response_model=ModelCard, tags=["openai"], responses=error_responses(404))
    async def model(model_id: str) -> dict:
        ctx.check_model(model_id)
        return card()

    @app.get("/health", response_model=Health, tags=["server"], responses={503: {"model": Health}})
    async def health() -> Response:
        error = ctx.aengine.error
        body = {"status": "ok" if error is None else "error", "model": ctx.model_id,
                "engine": "running" if error is None else f"{type(error).__name__}: {error}"}
        return JSONResponse(body, status_code=200 if error is None else 503)

    @app.get("/metrics", response_class=PlainTextResponse, tags=["server"],
             responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                              "description": "Prometheus text exposition format"}})
    async def metrics() -> PlainTextResponse:
        return PlainTextResponse(ctx.metrics.render(ctx.engine), media_type="text/plain; version=0.0.4")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(str(STATIC.joinpath("index.html")), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
    app.openapi = lambda: _openapi(app, ctx, api_key is not None)  # type: ignore[method-assign]
    app.add_middleware(GateMiddleware, ctx=ctx, api_key=api_key, max_body_bytes=max_body_bytes)
    app.state.ctx = ctx
    return app


def _openapi(app: FastAPI, ctx: ServeContext, secured: bool) -> dict:
    """FastAPI's schema, corrected to what the server really answers: 400 (not 422) for invalid bodies, the SSE
    media type beside JSON for streamable routes, the bearer scheme and 401 when an API key is set, and this
    server's limits (the one model id, n up to the engine's batch size, max_tokens up to the context)."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    schemas["ChatCompletionChunk"] = ChatCompletionChunk.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in list(schemas["ChatCompletionChunk"].pop("$defs", {}).items()):
        schemas.setdefault(name, sub)
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        properties = schemas[name]["properties"]
        properties["model"]["enum"] = [ctx.model_id]
        properties["n"]["maximum"] = ctx.engine.options.max_batch_size
        for field in ("max_tokens", "max_completion_tokens"):
            if field in properties:
                for option in properties[field].get("anyOf", [properties[field]]):
                    if option.get("type") == "integer":
                        option["maximum"] = ctx.max_model_len - 1
    _limit_token_ids(schemas["CompletionRequest"]["properties"]["prompt"], ctx.engine.vocab_limit - 1)
    if secured:
        components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            if path.startswith("/v1/") and method == "post":
                ok = responses.setdefault("200", {"description": "OK"})
                ok.setdefault("content", {})["text/event-stream"] = {"schema": {"type": "string"}}
            if secured and (path.startswith("/v1/") or path == "/metrics"):
                operation["security"] = [{"bearer": []}]
                responses["401"] = {"description": "missing or wrong API key",
                                    "content": {"application/json": {"schema": {"$ref":
                                                                     "#/components/schemas/ErrorResponse"}}}}
            if path.startswith("/v1/") and "400" not in responses and method == "get" and "{" in path:
                responses["400"] = {"description": "invalid request"}
    app.openapi_schema = schema
    return schema


def _limit_token_ids(node: Any, maximum: int) -> None:
    """Token ids in the prompt schema stop at the vocabulary's last id."""
    if isinstance(node, dict):
        if node.get("type") == "integer" and node.get("minimum") == 0:
            node["maximum"] = maximum
        for value in node.values():
            _limit_token_ids(value, maximum)
    elif isinstance(node, list):
        for value in node:
            _limit_token_ids(value, maximum)
