"""The planning documents: requirements, delivery plan, UX design, architecture, and notes
for roles the offline model has no template for."""

from __future__ import annotations

import json
import re

from offline.blueprint import Blueprint, EntityField, FieldKind, endpoints
from offline.fragments import bullets, field_table, md_table_rows
from offline.job import ROLE_DELIVERABLES, Deliverable, Job, role_title
from offline.templates import render


def _stories(bp: Blueprint) -> str:
    e = bp.entity
    actor = "signed-in user" if bp.auth else "user"
    words = {"entity_words": e.words, "plural_words": e.plural_words, "route": e.route}
    parts = [
        render("docs/requirements/crud_stories.md", actor=actor, primary=e.primary.name, **words)
    ]
    if bp.auth:
        parts.append(render("docs/requirements/auth_stories.md", **words))
    if bp.data_science:
        number = str(9 if bp.auth else 6)
        parts.append(
            render(
                "docs/requirements/metrics_story.md",
                number=number,
                actor=actor,
                plural_words=e.plural_words,
            )
        )
    return "\n".join(parts).rstrip()


def business_analyst(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    doc = render(
        "docs/requirements.md",
        project=bp.project,
        goal=bp.goal,
        plural_words=e.plural_words,
        entity_words=e.words,
        auth_scope=(
            f" Users register and log in; each user sees only their own {e.plural_words}."
            if bp.auth
            else " There are no user accounts: the goal does not ask for them."
        ),
        field_table=field_table(e),
        stories=_stories(bp),
        nfr_extra=(
            "- Passwords are hashed with PBKDF2-SHA256 and a per-user salt; tokens are random.\n"
            if bp.auth
            else ""
        ),
        entity=e.name,
        entity_reason="The goal is about managing these records.",
        needs_auth=json.dumps(bp.auth),
        auth_reason=(
            "The goal mentions users, accounts or authentication."
            if bp.auth
            else "The goal mentions no users, accounts or authentication."
        ),
        needs_data_science=json.dumps(bp.data_science),
        data_science_reason=(
            "The goal asks for analytics, metrics, predictions or recommendations."
            if bp.data_science
            else "The goal asks for no analytics, metrics, predictions or recommendations."
        ),
    )
    return Deliverable(
        {"docs/requirements.md": doc},
        {"needs_data_science": bp.data_science, "needs_auth": bp.auth, "entity": e.name},
    )


def _plan_rows(bp: Blueprint) -> list[tuple[str, ...]]:
    """Task table rows in delivery order; dependencies follow the sdlc template's DAG."""
    builders = ["backend_engineer", "frontend_engineer"]
    if bp.data_science:
        builders.append("data_scientist")
    tasks: list[tuple[str, str, list[str]]] = [
        ("Requirements and acceptance criteria", "business_analyst", []),
        ("Delivery plan", "project_manager", ["business_analyst"]),
        ("UX design", "ux_engineer", ["project_manager"]),
        ("Architecture and API contract", "tech_lead", ["ux_engineer"]),
        ("Database schema", "database_engineer", ["tech_lead"]),
        ("Backend API with tests", "backend_engineer", ["database_engineer"]),
        ("Frontend", "frontend_engineer", ["database_engineer"]),
        ("Analytics and metrics", "data_scientist", ["database_engineer"]),
        ("Code review", "code_reviewer", builders),
        ("Security review", "security_reviewer", ["code_reviewer"]),
        ("Repository README and cleanup", "cleanup_agent", ["security_reviewer"]),
    ]
    tasks = [t for t in tasks if t[1] != "data_scientist" or bp.data_science]
    number = {role: str(n) for n, (_, role, _) in enumerate(tasks, start=1)}
    return [
        (
            number[role],
            name,
            role_title(role),
            ", ".join(number[d] for d in deps) or "-",
            ", ".join(f"`{p}`" for p in ROLE_DELIVERABLES[role]),
        )
        for name, role, deps in tasks
    ]


def project_manager(job: Job) -> Deliverable:
    bp = job.blueprint
    build = "backend with tests, frontend" + (", analytics" if bp.data_science else "")
    milestones = [
        "**M1 Understand**: requirements, delivery plan and UX design are written.",
        "**M2 Design**: architecture with the full API contract, and the database schema.",
        f"**M3 Build**: {build}; the backend test suite passes.",
        "**M4 Verify**: code and security reviews, no high-severity finding open.",
        "**M5 Hand over**: repository README and `.gitignore`; the repo runs from a clean checkout.",
    ]
    risks = []
    if bp.auth:
        risks.append(
            (
                "Account data leaks between users",
                "Ownership check on every query, covered by a cross-user test; security review.",
            )
        )
    if bp.data_science:
        risks.append(
            (
                "Too little data for meaningful metrics",
                "Start with descriptive statistics; forecasts only once enough history exists.",
            )
        )
    doc = render(
        "docs/plan.md",
        project=bp.project,
        goal=bp.goal,
        milestones="\n".join(f"{n}. {m}" for n, m in enumerate(milestones, start=1)),
        task_rows=md_table_rows(_plan_rows(bp)),
        risk_rows=md_table_rows(risks),
    )
    return Deliverable({"docs/plan.md": doc}, {"cleanup": True})


_CONTROLS: dict[FieldKind, str] = {
    "str": "text input",
    "bool": "checkbox",
    "int": "number input (step 1)",
    "float": "number input (step 0.01)",
    "date": "date picker",
}


def _field_rule(f: EntityField) -> str:
    if f.kind == "str":
        return "required, 1-200 characters" if f.required else "optional"
    if f.kind in ("int", "float"):
        return "optional, 0 or more (empty means 0)"
    return "optional"


def _wireframe(bp: Blueprint) -> str:
    e = bp.entity
    inputs = "  ".join(f"[{f.label}{' [x]' if f.kind == 'bool' else ' ____'}]" for f in e.fields)
    first, second = (
        "  ".join(
            ("yes" if f.sample(v) else "no") if f.kind == "bool" else str(f.sample(v))
            for f in e.fields
        )
        for v in (0, 1)
    )
    lines = [f"{bp.project}                    API base URL [http://127.0.0.1:8000]"]
    if bp.auth:
        lines += [
            "",
            "Sign in",
            "[Username ____]  [Password ____]  (Log in) (Register)",
            "",
            "---- after signing in ----",
            "Signed in. (Sign out)",
        ]
    lines += [
        "",
        e.plural_words.capitalize(),
        f"{inputs}  (Add {e.words})",
        "",
        f"* {first}  (Delete)",
        f"* {second}  (Delete)",
        "",
        "status: " + f"{e.words.capitalize()} added.",
    ]
    return "\n".join(lines)


def ux_engineer(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    screens = []
    flows = []
    if bp.auth:
        screens.append(
            "### Sign in\n\nUsername and password with two actions, **Log in** and **Register** "
            "(register signs in straight away). Shown whenever there is no valid session; an "
            "expired token brings the user back here."
        )
        flows.append(
            "**First visit**: Register -> signed in -> empty list with the create form -> "
            f"add the first {e.words}."
        )
    screens += [
        f"### {e.plural_words.capitalize()}\n\nHeader with the product name and the API base URL "
        f"(editable, remembered in the browser). A create form with one control per field, then "
        f"the list: the {e.primary.label.lower()} in bold, the other fields beside it, a "
        "**Delete** button per row.",
        f'### Empty state\n\n"No {e.plural_words} yet." in place of the list, with the create '
        "form still on top so the next step is obvious.",
    ]
    flows += [
        f'**Add**: fill the form -> Add {e.words} -> status "{e.words.capitalize()} added." -> '
        "the list refreshes, the form clears.",
        f'**Delete**: Delete on a row -> status "{e.words.capitalize()} deleted." -> the row '
        "disappears.",
        "**Error**: the API's message (e.g. which field is invalid) appears in the status line; "
        "the form keeps its input so nothing is lost.",
        f"**Edit** is available in the API (`PUT /{e.route}/{{id}}`); the first UI iteration "
        "ships list, create and delete.",
    ]
    doc = render(
        "docs/design.md",
        project=bp.project,
        entity_words=e.words,
        screens="\n\n".join(screens),
        flows="\n".join(f"{n}. {flow}" for n, flow in enumerate(flows, start=1)),
        wireframe=_wireframe(bp),
        control_rows=md_table_rows(
            (f"`{f.name}`", _CONTROLS[f.kind], _field_rule(f)) for f in e.fields
        ),
    )
    return Deliverable({"docs/design.md": doc})


def _decisions(bp: Blueprint) -> list[str]:
    decisions = [
        "**FastAPI + pydantic**: request validation (422 with field errors) and OpenAPI docs "
        "come from the type hints.",
        "**Standard-library `sqlite3`, no ORM**: one table does not need one; every statement "
        "is a static, parameterised string.",
        "**App factory `create_app(db_path)`**: each test runs on its own database file.",
        "**PUT replaces the whole record** (no PATCH): simple semantics and static SQL.",
    ]
    if bp.auth:
        decisions += [
            "**Passwords**: PBKDF2-HMAC-SHA256, 600k iterations, 16-byte per-user salt "
            "(standard library, no native dependency).",
            "**Opaque bearer tokens, not JWT**: `secrets.token_urlsafe(32)`, stored as SHA-256 "
            "digests with a 12-hour expiry; revocable by deleting a row, no signing key to manage.",
            "**Ownership**: every record has `owner_id`; every query filters by it, and another "
            "user's record answers 404 rather than 403 so ids reveal nothing.",
        ]
    decisions.append(
        "**Static frontend**: plain HTML and `fetch`, no build step; the API allows its origin "
        "via `CORS_ORIGINS`."
    )
    if bp.data_science:
        decisions.append(
            "**Analytics as a pure-Python module** (`analytics/metrics.py`) over API records, "
            "so it can later back a `/stats` endpoint unchanged."
        )
    return decisions


def tech_lead(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    endpoint_rows = md_table_rows(
        (ep.method, f"`{ep.path}`", "yes" if ep.auth else "no", ep.body, ep.success, ep.errors)
        for ep in endpoints(bp)
    )
    tables = (["users", "sessions"] if bp.auth else []) + [e.plural]
    doc = render(
        "docs/architecture.md",
        project=bp.project,
        backend_responsibility=(
            f"CRUD for `/{e.route}`"
            + (", registration, login and bearer-token auth" if bp.auth else "")
        ),
        tables=", ".join(f"`{table}`" for table in tables),
        plural_words=e.plural_words,
        extra_components=(
            "| Analytics | `analytics/` | Pure Python | Summary metrics over records. |\n"
            if bp.data_science
            else ""
        ),
        auth_contract=(
            "Endpoints marked auth need `Authorization: Bearer <access_token>` from `/auth/login`; "
            "without it they answer 401."
            if bp.auth
            else "No endpoint needs authentication."
        ),
        endpoint_rows=endpoint_rows,
        class_name=e.class_name,
        field_table=field_table(e),
        decisions="\n".join(f"{n}. {d}" for n, d in enumerate(_decisions(bp), start=1)),
    )
    return Deliverable({"docs/architecture.md": doc})


def generic_notes(job: Job) -> Deliverable:
    """Roles without a template still get an answer: notes for a human to pick up."""
    bp = job.blueprint
    slug = re.sub(r"[^a-z0-9_-]+", "_", job.role.lower()).strip("_") or "agent"
    doc = render(
        "docs/role_notes.md",
        role_title=job.author,
        project=bp.project,
        goal=bp.goal,
        role=slug,
        entity=bp.entity.name,
        field_names=", ".join(f.name for f in bp.entity.fields),
        needs_auth=json.dumps(bp.auth),
        needs_data_science=json.dumps(bp.data_science),
        upstream=bullets(f"`{p}`" for p in sorted(job.upstream)) or "None.",
    )
    return Deliverable({f"docs/{slug}.md": doc})
