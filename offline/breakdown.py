"""The offline tech lead's work breakdown: the goal's parts as work packages.

Derived from the goal's blueprint, like everything the offline model writes: the API
service (its data model, its routes, authentication when the goal asks for accounts, and
its own tests) and the pages that use it, each owning its folder. A small goal (it says
so: "a small ...", "a tiny ...", "a script ...", with no accounts and no pages) is one
package. Only the roles the stage allows are used, within its package limit.
"""

from __future__ import annotations

import re

from core.contracts import BREAKDOWN_TAG, WorkBreakdown, WorkPackage
from offline.blueprint import Blueprint, endpoints

_SMALL_WORDS = frozenset(("small", "tiny", "simple", "minimal", "single", "script", "one-file"))
_PAGE_WORDS = frozenset(
    ("page", "pages", "ui", "web", "frontend", "front-end", "screen", "screens", "site", "website")
)
_LIMITS_RE = re.compile(rf'<{BREAKDOWN_TAG} [^>]*roles="([^"]*)" max-packages="(\d+)"')


def is_small(goal: str) -> bool:
    """A goal that asks for one small thing: one package does it."""
    words = set(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", goal.lower()))
    return bool(words & _SMALL_WORDS) and not words & _PAGE_WORDS


def plan_work(task_message: str, goal: str) -> WorkBreakdown | None:
    """The breakdown for the stage the task message asks to plan; None if it asks for none."""
    limits = _LIMITS_RE.search(task_message)
    if limits is None:
        return None
    roles = [r for r in limits.group(1).split(",") if r]
    bp = Blueprint.from_goal(goal)
    packages = [p for p in _packages(bp) if p.role in roles] or [
        _service(bp, roles[0] if roles else "backend_engineer", whole=True)
    ]
    packages = packages[: int(limits.group(2))]
    kept = {p.id for p in packages}
    for package in packages:
        package.depends_on = [d for d in package.depends_on if d in kept]
    small = " (a small goal: one package)" if len(packages) == 1 else ""
    return WorkBreakdown(
        packages=packages,
        rationale=f"{bp.project}: {', '.join(p.id for p in packages)}{small}",
    )


def _packages(bp: Blueprint) -> list[WorkPackage]:
    if is_small(bp.goal):
        return [_service(bp, "backend_engineer", whole=False)]
    return [_service(bp, "backend_engineer", whole=False), _pages(bp)]


def _service(bp: Blueprint, role: str, *, whole: bool) -> WorkPackage:
    e = bp.entity
    parts = [f"the {e.words} data model ({', '.join(f.name for f in e.fields)})", "its routes"]
    if bp.auth:
        parts.append("user accounts with bearer tokens")
    criteria = [f"{ep.method} {ep.path} answers {ep.success}" for ep in endpoints(bp)]
    criteria.append("the service's own tests pass")
    return WorkPackage(
        id="backend",
        role=role,
        description=f"Build the {bp.project} API service: {', '.join(parts)}, with its tests.",
        acceptance_criteria=criteria,
        owns=["backend/", "frontend/"] if whole else ["backend/"],
    )


def _pages(bp: Blueprint) -> WorkPackage:
    e = bp.entity
    return WorkPackage(
        id="frontend",
        role="frontend_engineer",
        description=(
            f"Build the pages of {bp.project}: list, create and delete {e.plural_words}"
            + (", with sign-in" if bp.auth else "")
            + ", against the API contract the backend posts."
        ),
        acceptance_criteria=[
            f"the page lists the {e.plural_words} from the API",
            f"the form creates a {e.words} with every required field",
        ],
        owns=["frontend/"],
    )
