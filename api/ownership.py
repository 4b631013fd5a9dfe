"""A run as seen by its own organization: another tenant's run is exactly as missing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status

from api.auth import CallerDep
from api.deps import DatabaseDep, StatusCacheDep
from api.schemas.fields import Text
from core.persistence import storage
from core.persistence.db import Run

READS = frozenset({"GET", "HEAD"})


def run_not_found(run_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no run with id {run_id!r}")


async def owned_run(
    run_id: Text,
    principal: CallerDep,
    db: DatabaseDep,
    request: Request,
    statuses: StatusCacheDep,
) -> AsyncIterator[Run]:
    """The run; a request that may change it (a decision, a cancel, a reset, a plan edit)
    makes this process's next status of it ask Temporal again, before and after."""
    run = await storage.get_run(db, run_id)
    if run is None or run.tenant != principal.org_id:
        raise run_not_found(run_id)
    if request.method in READS:
        yield run
        return
    statuses.forget(run.id)
    try:
        yield run
    finally:
        statuses.forget(run.id)


# "function": the code after `yield` runs when the route returns, before its answer is sent.
OwnedRunDep = Annotated[Run, Depends(owned_run, scope="function")]

RUN_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "No run with this id in the caller's organization."}
}
"""The answer `OwnedRunDep` may give, for a route's `responses`."""
