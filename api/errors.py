"""Every error answers JSON: `{"detail": ...}` naming the problem, never a bare 500 page."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from core.db import DatabaseUnavailable
from core.steering import SteeringError
from core.temporal import TemporalUnavailable
from core.tenancy import TenancyError


def install_error_handlers(app: FastAPI) -> None:
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
