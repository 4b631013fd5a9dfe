"""Every error answers JSON: `{"detail": ...}` naming the problem, never a bare 500 page."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core.infrastructure.temporal import TemporalUnavailable
from core.persistence.db import DatabaseUnavailable
from core.persistence.tenancy import TenancyError
from core.services.steering import SteeringError


def _plain(value: Any) -> Any:
    """A context value as JSON can always carry it (an exception, a NaN bound: its text)."""
    if isinstance(value, bool | int | str) or value is None:
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    return str(value)


def validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """FastAPI's errors without the `input` they quote.

    Echoing the input is how a NaN or a lone surrogate turned a 422 into a 500 (neither
    can be encoded in a JSON response), and how a megabyte body came back in the answer.
    """
    errors = []
    for error in exc.errors():
        shown: dict[str, Any] = {
            "type": error["type"],
            "loc": [_plain(part) for part in error["loc"]],
            "msg": str(error["msg"]),
        }
        if error.get("ctx"):
            shown["ctx"] = {str(key): _plain(value) for key, value in error["ctx"].items()}
        errors.append(shown)
    return errors


def unprocessable(
    loc: tuple[str, ...], message: str, kind: str = "value_error", **context: Any
) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors, without echoing the input back.

    `loc` as FastAPI's: where the value came from, then its path (`("body", "goal")`).
    """
    error: dict[str, Any] = {"type": kind, "loc": list(loc), "msg": message}
    if context:
        error["ctx"] = context
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [error])


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            {"detail": validation_errors(exc)},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )

    @app.exception_handler(DatabaseUnavailable)
    @app.exception_handler(TemporalUnavailable)
    async def unavailable(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_503_SERVICE_UNAVAILABLE)

    @app.exception_handler(SteeringError)
    async def steering(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_409_CONFLICT)

    @app.exception_handler(TenancyError)
    async def tenancy(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status.HTTP_400_BAD_REQUEST)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, _exc: Exception) -> JSONResponse:
        # Starlette still logs the traceback; the client learns nothing of the internals.
        return JSONResponse(
            {"detail": "internal server error"},
            status_code=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
