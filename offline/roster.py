"""Which generator plays which role, and the labelled deliverables it returns.

A new role (or a planner's work-package breakdown) is a new generator module registered
here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from agents.conversation import ReceivedNote
from offline.analytics import data_scientist
from offline.backend import backend_engineer
from offline.blueprint import Blueprint
from offline.documents import (
    business_analyst,
    generic_notes,
    project_manager,
    tech_lead,
    ux_engineer,
)
from offline.frontend import frontend_engineer
from offline.job import Deliverable, Generator, Job, role_title
from offline.labels import labelled
from offline.repository import cleanup_agent
from offline.reviews import code_reviewer, security_reviewer
from offline.schema import database_engineer

ROLE_BUILDERS: dict[str, Generator] = {
    "business_analyst": business_analyst,
    "project_manager": project_manager,
    "ux_engineer": ux_engineer,
    "tech_lead": tech_lead,
    "database_engineer": database_engineer,
    "backend_engineer": backend_engineer,
    "frontend_engineer": frontend_engineer,
    "code_reviewer": code_reviewer,
    "security_reviewer": security_reviewer,
    "data_scientist": data_scientist,
    "cleanup_agent": cleanup_agent,
}
"""Roles without a generator here get `generic_notes`."""


def deliverables(
    role: str,
    goal: str,
    upstream: Mapping[str, str],
    model: str,
    notes: Iterable[ReceivedNote] = (),
) -> Deliverable:
    """The labelled files and outputs `role` delivers for `goal`: the offline model's answer."""
    author = role_title(role)
    job = Job(
        role=role,
        author=author,
        model=model,
        blueprint=Blueprint.from_goal(goal),
        upstream=upstream,
        notes=tuple(notes),
    )
    result = ROLE_BUILDERS.get(role, generic_notes)(job)
    files = {path: labelled(path, text, author, model) for path, text in result.files.items()}
    return Deliverable(files, result.outputs, result.verdict)
