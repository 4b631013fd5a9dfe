"""What a generator is given (a `Job`) and what it returns (a `Deliverable`), and the files
each role is expected to deliver."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agents import roles
from agents.conversation import ReceivedNote
from core.contracts import VALIDATOR_ROLE
from offline.blueprint import Blueprint


@dataclass(frozen=True)
class Job:
    """One role's assignment, as the offline model understands it."""

    role: str
    author: str
    model: str
    blueprint: Blueprint
    upstream: Mapping[str, str]
    notes: tuple[ReceivedNote, ...] = ()
    """Notes other agents posted to this one (e.g. the backend's API contract)."""


@dataclass(frozen=True)
class Deliverable:
    files: dict[str, str]
    outputs: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    """A reviewer's `submit_verdict` input, sent when the request offers that tool."""


ROLE_DELIVERABLES: dict[str, tuple[str, ...]] = {
    "business_analyst": ("docs/requirements.md",),
    "project_manager": ("docs/plan.md",),
    "ux_engineer": ("docs/design.md",),
    "tech_lead": ("docs/architecture.md",),
    "database_engineer": ("db/schema.sql",),
    "backend_engineer": (
        "backend/app.py",
        "backend/tests/conftest.py",
        "backend/tests/test_app.py",
        "backend/requirements.txt",
        "backend/README.md",
    ),
    "frontend_engineer": ("frontend/index.html", "frontend/app.js"),
    "code_reviewer": ("reviews/code_review.md",),
    "security_reviewer": ("reviews/security_review.md",),
    "data_scientist": ("analytics/metrics.md", "analytics/metrics.py"),
    "cleanup_agent": ("README.md", ".gitignore"),
    VALIDATOR_ROLE: (),
}
"""Paths each role writes; the plan quotes them and tests hold the builders to them."""


def role_title(role: str) -> str:
    known = roles.ROLES.get(role)
    return known.title if known else (role.replace("_", " ").strip().capitalize() or "Agent")


Generator = Callable[[Job], Deliverable]
"""Writes one role's deliverables."""
