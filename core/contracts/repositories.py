"""A change run's starting point: a repository snapshot, stored once per tenant."""

from __future__ import annotations

from pydantic import BaseModel, Field

REPOSITORY_TASK = "repository"
"""The task id of the workspace files seeded from the repository (no agent wrote them)."""

REPOSITORY_ROLE = "repository"
"""The role recorded for seeded files."""


class RepositoryRef(BaseModel):
    """The snapshot a run starts from, as stored by `core.services.repositories`."""

    snapshot_id: str = Field(max_length=64)
    """Content address: the same repository at the same commit is one snapshot per tenant."""
    commit: str = Field(max_length=64)
    """The base commit: the user's own for a git repository, a made one for an archive."""
    ref: str = Field(default="HEAD", max_length=200)
    """The ref the user named."""
    source: str = Field(max_length=500)
    """Where it came from: `local:<path>`, `remote:<url>`, `registered:<name>` or `upload`."""
    test_command: str | None = Field(default=None, max_length=500)
    """The repository's own test command (detected, or set by the template)."""
    files: int = 0
    bytes: int = 0
    binaries: int = 0
    """Files kept as references (their content is not in the workspace)."""
