"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with a 4xx status for anything a
client did wrong (invalid JSON, unknown fields, bad values, a prompt longer than the context, an unknown model, a
missing API key). A 500 means a bug in qwq; it is logged with its traceback and answered in the same shape."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qwq.utils.errors import QwqError

log = logging.getLogger("qwq.serve")

INVALID_REQUEST = "invalid_request_error"
NOT_FOUND = "not_found_error"
AUTHENTICATION = "authentication_error"
SERVER_ERROR = "server_error"
OVERLOADED = "overloaded_error"


class APIError(Exception):
    def __init__(self, status: int, message: str, type: str = INVALID_REQUEST, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers

    def body(self) -> dict:
        return error_body(self.message, self.type, self.param, self.code)


class BodyTooLarge(APIError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body larger than {limit} bytes", INVALID_REQUEST, None, "request_too_large")


def error_body(message: str, type: str = INVALID_REQUEST, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def error_response(status: int, message: str, type: str = INVALID_REQUEST, param: str | None = None,
                   code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, type, param, code), status_code=status, headers=headers)


def bad_request(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, INVALID_REQUEST, param, code)


def _location(loc: tuple, body: Any) -> str | None:
    """The field path of an error, following the request body: pydantic puts union member tags ("bool",
    "literal['a']", "TextPart") into locations; those are not fields and are skipped."""
    parts, node = [], body
    for part in loc:
        if part == "body" and not parts:
            continue
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            parts.append(part)
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            parts.append(str(part))
            node = node[part]
        elif not isinstance(node, (dict, list)) or isinstance(part, int):
            continue
        elif isinstance(node, dict) and isinstance(part, str) and part.isidentifier() and part[:1].islower() \
                and part not in {"bool", "int", "str", "float", "list", "dict", "none"} \
                and part not in [v for v in node.values() if isinstance(v, str)]:  # not a tagged-union tag
            parts.append(part)  # a missing field: named, though the body lacks it
            node = None
    return ".".join(parts) or None


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    errors = exc.errors()
    if not errors:
        return "invalid request", None
    first = errors[0]
    kind = first.get("type", "")
    if kind == "json_invalid":
        detail = (first.get("ctx") or {}).get("error", "")
        return f"the request body is not valid JSON{': ' + str(detail) if detail else ''}", None
    body = getattr(exc, "body", None)
    if kind == "missing" and tuple(first.get("loc", ())) == ("body",):
        return "the request body is empty: send a JSON object", None
    param = _location(tuple(first.get("loc", ())), body)
    if kind == "extra_forbidden":
        return f"unrecognized request argument supplied: {param}", param
    same = [e for e in errors if _location(tuple(e.get("loc", ())), body) == param]
    reasons = list(dict.fromkeys(str(e.get("msg", "invalid value")) for e in same))
    if len(reasons) > 1:  # a value matching none of a union's forms
        message = f"{param}: invalid value {_short(first.get('input'))} (" + "; or ".join(reasons) + ")"
    else:
        message = f"{param}: {reasons[0]}" if param else reasons[0]
    others = len({_location(tuple(e.get("loc", ())), body) for e in errors}) - 1
    if others > 0:
        message += f" (and {others} more field{'s' if others > 1 else ''})"
    return message, param


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc)
        return error_response(400, message, INVALID_REQUEST, param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc.__cause__, APIError):  # e.g. the body limit tripped while FastAPI read the body
            return JSONResponse(exc.__cause__.body(), status_code=exc.__cause__.status)
        kind = NOT_FOUND if exc.status_code == 404 else INVALID_REQUEST
        detail = exc.detail if isinstance(exc.detail, str) else "request failed"
        if exc.status_code == 404:
            detail = f"no route {request.method} {request.url.path}"
        elif exc.status_code == 405:
            detail = f"method {request.method} is not allowed on {request.url.path}"
        return error_response(exc.status_code, detail, kind, headers=getattr(exc, "headers", None))

    @app.exception_handler(QwqError)
    async def _qwq(request: Request, exc: QwqError) -> JSONResponse:
        return error_response(400, str(exc), INVALID_REQUEST)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal server error ({type(exc).__name__})", SERVER_ERROR)


# OpenAPI: every error status the routes can answer, in the error shape
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {400: "invalid request (bad JSON, unknown field, bad value, context length exceeded)",
                    401: "missing or wrong API key", 404: "unknown model", 413: "request body too large",
                    503: "the engine stopped"}
    return {s: {"model": _error_model(), "description": descriptions.get(s, "error")} for s in statuses}


def _error_model():
    from qwq.serve.protocol import ErrorResponse

    return ErrorResponse
