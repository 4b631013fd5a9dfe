"""Repositories a tenant uploads or names, for change runs (`POST /repositories`, `POST /runs`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.contracts import RepositoryRef


class RunRepository(BaseModel):
    """The repository a run starts from: one uploaded before, or one the operator offers."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(
        default=None,
        max_length=64,
        description="A snapshot id returned by `POST /repositories`.",
    )
    registered: str | None = Field(
        default=None,
        max_length=200,
        description="The name of a repository the operator registered (ORCHESTRATOR_REPOSITORIES).",
    )
    archive: str | None = Field(
        default=None,
        description="A tar, tar.gz or zip of the repository, base64-encoded: one request for "
        "a small repository (the request body limit applies); a larger one goes through "
        "`POST /repositories` first.",
    )
    ref: str = Field(
        default="HEAD",
        max_length=200,
        description="With `registered`: the commit, branch or tag to start from.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> RunRepository:
        given = [name for name in ("id", "registered", "archive") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of `id`, `registered` and `archive`")
        return self


class RepositoryView(RepositoryRef):
    """A stored snapshot: name it as `repository.id` in `POST /runs`."""

    id: str = Field(description="The snapshot id (the same as `snapshot_id`).")
