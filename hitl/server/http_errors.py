"""Domain errors as HTTP responses: one status per error, one JSON shape for all.

`{"error": {"type": ..., "message": ..., "status": ...}}`, plus `recorded` (the decision
that stands) for a refused decision and `fields` for an invalid request.
"""

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from hitl.checkpoints.errors import (
    DatabaseBusy,
    DatabaseCorrupt,
    DatabaseError,
    TokenError,
    TokenExists,
    TokenNotFound,
    UntrustedCheckpointError,
    WebhookError,
)
from hitl.service import errors

STATUS: dict[type[Exception], int] = {
    errors.ThreadNotFound: 404,
    errors.ThreadExists: 409,
    errors.UnknownToolCall: 404,
    errors.UnknownCheckpoint: 404,
    errors.MessagesOutOfRange: 404,
    errors.NothingPending: 409,
    errors.AlreadyDecided: 409,
    errors.PendingApprovalsExist: 409,
    errors.NotReconcilable: 409,
    errors.ArgsChanged: 409,
    errors.DecisionNotAllowed: 422,
    errors.InvalidDecision: 422,
    errors.InvalidThreadId: 422,
    errors.InvalidTriage: 422,
    errors.NotPermitted: 403,
    errors.LinkNotFound: 404,
    errors.LinkGone: 410,
    errors.AlreadyVoted: 409,
    errors.StandingNotFound: 404,
    errors.InvalidStanding: 422,
    errors.Busy: 503,
    errors.LedgerTampered: 500,
    errors.InvalidSettings: 500,
    DatabaseError: 500,
    DatabaseCorrupt: 500,
    DatabaseBusy: 503,
    UntrustedCheckpointError: 500,
    TokenError: 422,
    TokenExists: 409,
    TokenNotFound: 404,
    WebhookError: 422,
}
_NAMES = {401: "Unauthenticated", 403: "Forbidden", 404: "NotFound", 413: "TooLarge"}


class ErrorDetail(BaseModel):
    """What went wrong, and what to do next."""

    type: str
    """The error's name: a domain error's (`ThreadNotFound`...), or `InvalidRequest`,
    `Unauthenticated`, `Forbidden`, `NotFound`, `TooLarge`."""
    message: str
    """What happened and what to do next, for a person."""
    status: int
    """The HTTP status, repeated."""
    recorded: dict[str, Any] | None = None
    """A refused decision: the decision that stands (`decided_by`, `decided_at`, ...)."""
    fields: list[dict[str, str]] | None = None
    """An invalid request: each `field` and its `problem`."""


class ErrorBody(BaseModel):
    """Every error answer of the API."""

    error: ErrorDetail


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in {
        401: "No token, or one that is not valid",
        403: "The token's role, or the tool's policy, does not allow it",
        404: "No such thread, call, run, checkpoint, token or webhook",
        409: "A decision or message the ledger refuses in the thread's current state",
        413: "A body over 1 MiB",
        422: "An invalid request or answer, naming the field",
        500: "A tampered ledger, an untrusted checkpoint, or a database error",
        503: "Busy: retry after `Retry-After` seconds",
    }.items()
}
"""The error answers every endpoint documents (in `{"error": {...}}`), for its OpenAPI."""


def error_body(error: Exception, status: int) -> dict[str, Any]:
    body: dict[str, Any] = {"type": type(error).__name__, "message": str(error), "status": status}
    if isinstance(error, errors.AlreadyDecided):
        body["recorded"] = {
            "decided_by": error.by,
            "decided_at": error.at,
            "decision": error.decision,
            "status": error.status,
        }
    return {"error": body}


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""

    async def domain(request: Request, error: Exception) -> JSONResponse:
        status = STATUS.get(type(error), 500)
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse(error_body(error, status), status_code=status, headers=headers)

    async def http(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, StarletteHTTPException)
        if unreadable := _unreadable_body(error):
            return _invalid_request([{"field": "body", "problem": unreadable}])
        body = {
            "type": _NAMES.get(error.status_code, "HTTPError"),
            "message": str(error.detail),
            "status": error.status_code,
        }
        return JSONResponse({"error": body}, status_code=error.status_code, headers=error.headers)

    async def invalid(request: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        return _invalid_request(
            [
                {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]}
                for e in error.errors()
            ]
        )

    for error_type in (*STATUS, *errors.DOMAIN_ERRORS):
        app.add_exception_handler(error_type, domain)
    app.add_exception_handler(StarletteHTTPException, http)
    app.add_exception_handler(RequestValidationError, invalid)


def _invalid_request(fields: list[dict[str, str]]) -> JSONResponse:
    message = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    body = {"type": "InvalidRequest", "message": message, "status": 422, "fields": fields}
    return JSONResponse({"error": body}, status_code=422)


def _unreadable_body(error: StarletteHTTPException) -> str | None:
    """What was wrong with a JSON body FastAPI could not decode, if that is the error.

    FastAPI answers `422` for malformed JSON but a bare `400` when decoding fails otherwise
    (bytes that are not UTF-8, nesting deeper than the parser's recursion), with the cause
    chained: both are an invalid request like any other.
    """
    if error.status_code != 400:
        return None
    if isinstance(error.__cause__, UnicodeDecodeError):
        return "not UTF-8 text; a JSON body must be UTF-8"
    if isinstance(error.__cause__, RecursionError):
        return "JSON nested too deeply to read"
    if isinstance(error.__cause__, ValueError):
        return f"not valid JSON: {error.__cause__}"
    return None
