"""What a run built: its workspace file by file, one file's content, the repository as a zip.

Scoped like every run route: another tenant's run answers 404 (`api/ownership.py`).
"""

from __future__ import annotations

import asyncio
import io
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import PlainTextResponse, Response

from api.deps import DatabaseDep
from api.ownership import RUN_NOT_FOUND, OwnedRunDep
from api.schemas.artifacts import ArtifactInfo
from api.schemas.fields import Text
from core.persistence import storage
from core.services.export import export_repository

router = APIRouter(tags=["runs"])


@router.get("/runs/{run_id}/artifacts", responses=RUN_NOT_FOUND)
async def list_artifacts(run: OwnedRunDep, db: DatabaseDep) -> list[ArtifactInfo]:
    """The workspace as it stands: the newest version of every file."""
    return [
        ArtifactInfo.model_validate(row, from_attributes=True)
        for row in await storage.latest_artifacts(db, run.id)
    ]


@router.get(
    "/runs/{run_id}/artifacts/{path:path}",
    response_class=PlainTextResponse,
    responses={
        200: {"content": {"text/plain": {}}, "description": "The file's newest version."},
        404: {"description": "No such run in the caller's organization, or no such file."},
    },
)
async def artifact_content(path: Text, run: OwnedRunDep, db: DatabaseDep) -> PlainTextResponse:
    """One file's content (newest version); `ETag` is its sha256."""
    found = [a for a in await storage.latest_artifacts(db, run.id, prefix=path) if a.path == path]
    if not found:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no artifact {path!r} in run {run.id}")
    artifact = found[0]
    return PlainTextResponse(
        artifact.content,
        headers={"ETag": f'"{artifact.sha256}"', "X-Artifact-Version": str(artifact.version)},
    )


def _zip(root: Path, files: Sequence[Path]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            archive.write(path, path.relative_to(root).as_posix())
    return buffer.getvalue()


@router.get(
    "/runs/{run_id}/archive",
    response_class=Response,
    responses={
        **RUN_NOT_FOUND,
        200: {"content": {"application/zip": {}}, "description": "The repository as a zip."},
    },
)
async def archive(run: OwnedRunDep, db: DatabaseDep) -> Response:
    """The generated repository as a zip: what `orchestrator run` delivers, PROVENANCE.md
    included (a snapshot of the workspace while the run is still going)."""
    with tempfile.TemporaryDirectory(prefix="orchestrator-archive-") as tmp:
        root = Path(tmp)
        files = await export_repository(db, run.id, run.workflow_id, root)
        content = await asyncio.to_thread(_zip, root, files)
    return Response(
        content,
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="run-{run.id}.zip"'},
    )
