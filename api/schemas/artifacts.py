"""Bodies of the artifacts API: the files a run's workspace holds."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class ArtifactInfo(BaseModel):
    """The newest version of one file of the run's workspace."""

    path: str
    version: int
    task: str = Field(validation_alias="task_id")
    role: str
    model: str
    size: int
    sha256: str
    created_at: datetime
