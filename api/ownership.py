"""A run as seen by its own organization: another tenant's run is exactly as missing."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, HTTPException, status

from api.auth import CallerDep
from api.deps import DatabaseDep
from api.schemas.fields import Text
from core.persistence import storage
from core.persistence.db import Run


async def owned_run(run_id: Text, principal: CallerDep, db: DatabaseDep) -> Run:
    run = await storage.get_run(db, run_id)
    if run is None or run.tenant != principal.org_id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run with id {run_id!r}")
    return run


OwnedRunDep = Annotated[Run, Depends(owned_run)]

RUN_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No run with this id in the caller's organization."}
}
"""The answer `OwnedRunDep` may give, for a route's `responses`."""
