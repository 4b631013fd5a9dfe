"""Repositories for change runs, and a run's work as git.

`POST /repositories` takes an archive (tar.gz or zip), unpacks it safely and stores it as a
snapshot of the caller's organization; `POST /runs` names it (or a repository the operator
registered). A tenant never names a server path. `GET /runs/{id}/patch`, `/bundle` and
`/pull-request` give any run's work as git.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import PlainTextResponse, Response

from agents.repomap import outline_json
from api.auth import CallerDep, WriterDep
from api.deps import DatabaseDep, SettingsDep
from api.errors import unprocessable
from api.ownership import RUN_NOT_FOUND, OwnedRunDep
from api.schemas.fields import Text
from api.schemas.repositories import RepositoryView, RunRepository
from core.contracts import RepositoryRef
from core.infrastructure.settings import Settings
from core.persistence import repositories
from core.persistence.db import Database
from core.services.archives import ArchiveError
from core.services.delivery import DeliveryError, run_bundle, run_patch, run_pull_request
from core.services.repositories import RepositoryError, import_archive, import_registered

router = APIRouter(tags=["repositories"])

UNDELIVERABLE: dict[int | str, dict[str, Any]] = {
    409: {"description": "The run wrote no files yet, or its change is empty (a bundle)."}
}


@router.post(
    "/repositories",
    status_code=status.HTTP_201_CREATED,
    response_model=RepositoryView,
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "A tar, tar.gz or zip, told by its first bytes (any Content-Type, e.g. "
            "application/gzip or application/zip).",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
    responses={
        413: {"description": "The archive is larger than REPOSITORY_MAX_ARCHIVE_BYTES."},
        422: {"description": "The archive is unsafe, too large unpacked, or not an archive."},
    },
)
async def upload_repository(
    request: Request, caller: WriterDep, db: DatabaseDep, settings: SettingsDep
) -> RepositoryView:
    """Store an archive of a repository's files (a tar.gz or a zip, `.gitignore` honoured) as
    a snapshot; the same files uploaded again are the same snapshot."""
    # RequestLimits (api/app.py) answers 413 past REPOSITORY_MAX_ARCHIVE_BYTES on this path.
    data = await request.body()
    try:
        ref = await import_archive(
            db, settings.repositories, caller.org_id, data, outline=outline_json
        )
    except (ArchiveError, RepositoryError) as exc:
        raise unprocessable(("body",), str(exc)) from None
    return RepositoryView(id=ref.snapshot_id, **ref.model_dump())


@router.get("/repositories/{snapshot_id}", response_model=RepositoryView)
async def repository(snapshot_id: Text, caller: CallerDep, db: DatabaseDep) -> RepositoryView:
    """A stored snapshot of the caller's organization."""
    snapshot = await repositories.get_snapshot(db, snapshot_id, caller.org_id)
    if snapshot is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no repository {snapshot_id!r}")
    ref = repositories.snapshot_ref(snapshot)
    return RepositoryView(id=ref.snapshot_id, **ref.model_dump())


async def run_repository(
    asked: RunRepository | None, tenant: str, db: Database, settings: Settings
) -> RepositoryRef | None:
    """The snapshot a run request names: 422 naming `repository` when it cannot be had."""
    if asked is None:
        return None
    if asked.id is not None:
        snapshot = await repositories.get_snapshot(db, asked.id, tenant)
        if snapshot is None:
            raise unprocessable(("body", "repository", "id"), f"no repository {asked.id!r}")
        return repositories.snapshot_ref(snapshot)
    if asked.archive is not None:
        where = ("body", "repository", "archive")
        try:
            data = base64.b64decode(asked.archive, validate=True)
        except ValueError:
            raise unprocessable(where, "the archive is not valid base64") from None
        try:
            return await import_archive(
                db, settings.repositories, tenant, data, outline=outline_json
            )
        except (ArchiveError, RepositoryError) as exc:
            raise unprocessable(where, str(exc)) from None
    assert asked.registered is not None
    try:
        return await import_registered(
            db, settings.repositories, tenant, asked.registered, asked.ref, outline=outline_json
        )
    except RepositoryError as exc:
        raise unprocessable(("body", "repository", "registered"), str(exc)) from None


@router.get(
    "/runs/{run_id}/patch",
    response_class=PlainTextResponse,
    responses={**RUN_NOT_FOUND, **UNDELIVERABLE, 200: {"content": {"text/x-diff": {}}}},
)
async def patch(run: OwnedRunDep, db: DatabaseDep) -> PlainTextResponse:
    """The run's change as one patch: `git apply` it on the commit the run started from."""
    with _undeliverable():
        return PlainTextResponse(await run_patch(db, run.id), media_type="text/x-diff")


@router.get(
    "/runs/{run_id}/bundle",
    response_class=Response,
    responses={
        **RUN_NOT_FOUND,
        **UNDELIVERABLE,
        200: {"content": {"application/octet-stream": {}}},
    },
)
async def bundle(run: OwnedRunDep, db: DatabaseDep) -> Response:
    """The run's commits as a git bundle (`git fetch run.bundle 'refs/heads/*:refs/heads/*'`,
    or `git clone run.bundle` for a greenfield run)."""
    with _undeliverable():
        data = await run_bundle(db, run.id)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{run.id}.bundle"'},
    )


@router.get(
    "/runs/{run_id}/pull-request",
    response_class=PlainTextResponse,
    responses={**RUN_NOT_FOUND, **UNDELIVERABLE, 200: {"content": {"text/markdown": {}}}},
)
async def pull_request(run: OwnedRunDep, db: DatabaseDep) -> PlainTextResponse:
    """The pull-request description: goal, changes, review verdicts, open findings, cost."""
    with _undeliverable():
        text = await run_pull_request(db, run.id)
    return PlainTextResponse(text, media_type="text/markdown")


@contextmanager
def _undeliverable() -> Iterator[None]:
    """What a run's files cannot become (no files, an empty change) is a 409 saying why."""
    try:
        yield
    except DeliveryError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
