"""Liveness and readiness probes (Kubernetes points its probes here)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from api.deps import DatabaseDep, TemporalDep
from api.schemas.health import Health

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> Health:
    """The process answers: nothing else is checked."""
    return Health(status="ok")


@router.get("/readyz", responses={503: {"model": Health}})
async def readyz(db: DatabaseDep, temporal: TemporalDep, response: Response) -> Health:
    """The database and Temporal both answer."""
    checks: dict[str, str] = {}
    try:
        async with db.session() as session:
            await session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the body says which
        checks["database"] = f"unavailable: {str(exc).splitlines()[0]}"
    try:
        await temporal.service_client.check_health()
        checks["temporal"] = "ok"
    except Exception as exc:
        checks["temporal"] = f"unavailable: {str(exc).splitlines()[0]}"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if ready else "unavailable", checks=checks)
