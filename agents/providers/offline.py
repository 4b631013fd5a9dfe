"""The offline model: a deterministic stand-in for an LLM, so the whole pipeline runs without
a network, an API key or any cost.

It plays every agent role from templates: on its first turn it writes the role's
deliverables (a real FastAPI service with passing tests for the backend engineer, reviews
that actually scan the delivered code for the reviewers) and records the role's outputs;
once the tool results come back it ends the turn with a summary. Same request, same answer:
ids, texts and usage are all derived from the request.

Where backend and frontend engineers run side by side (peers in the task message), the
backend engineer posts its API contract to the frontend with `post_note`, and the frontend
engineer first calls `wait_for_note`, then builds its API client against the note it got.

Every file it writes starts with a line saying it came from the offline model, so nobody
mistakes template output for model output.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import json
import keyword
import math
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from agents import roles
from agents.context import parse_goal, parse_review_request, parse_upstream
from agents.conversation import ReceivedNote, parse_notes, parse_peers
from agents.protocol import (
    ContentBlock,
    Message,
    ModelRequest,
    ModelResponse,
    StopReason,
    TextBlock,
    ToolResultBlock,
    ToolUseBlock,
)
from agents.providers import offline_templates as tpl
from core.contracts import VALIDATOR_ROLE, Usage

OFFLINE_MODEL = "offline-sim-1"

# --------------------------------------------------------------------------- goal analysis

FieldKind = Literal["str", "bool", "int", "float", "date"]


@dataclass(frozen=True)
class EntityField:
    name: str
    kind: FieldKind
    required: bool = False

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def python_type(self) -> str:
        return "date | None" if self.kind == "date" else self.kind

    def sample(self, variant: int) -> Any:
        """Two distinct, valid example values (variant 0 and 1) for tests and docs."""
        samples: dict[FieldKind, tuple[Any, Any]] = {
            "str": (
                f"Example {self.name.replace('_', ' ')} 1",
                f"Example {self.name.replace('_', ' ')} 2",
            ),
            "bool": (False, True),
            "int": (5, 12),
            "float": (5.5, 12.25),
            "date": ("2030-01-15", "2030-02-20"),
        }
        return samples[self.kind][variant]

    @property
    def invalid_value(self) -> Any:
        """A value of the wrong type, which the API must reject with 422."""
        return {"str": "", "bool": "maybe", "int": "many", "float": "lots", "date": "someday"}[
            self.kind
        ]


@dataclass(frozen=True)
class Entity:
    name: str
    """Singular snake_case, e.g. `task`, `inventory_item`."""
    plural: str
    class_name: str
    fields: tuple[EntityField, ...]

    @property
    def words(self) -> str:
        return self.name.replace("_", " ")

    @property
    def plural_words(self) -> str:
        return self.plural.replace("_", " ")

    @property
    def route(self) -> str:
        return self.plural.replace("_", "-")

    @property
    def primary(self) -> EntityField:
        """The required text field that names a record (title, name, ...)."""
        return self.fields[0]


def pluralize(word: str) -> str:
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    return word + "s"


def singularize(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if re.search(r"(ss|us|is)$", word):
        return word
    if re.search(r"(sses|xes|zes|ches|shes)$", word):
        return word[:-2]
    if word.endswith("s") and len(word) > 3:
        return word[:-1]
    return word


def make_entity(name: str, *specs: str) -> Entity:
    """An entity from field specs `name:kind`, a trailing `!` marking a required field."""
    fields = []
    for spec in specs:
        field_name, kind = spec.rstrip("!").split(":")
        if kind not in get_args(FieldKind):
            raise ValueError(f"unknown field kind in {spec!r}")
        fields.append(EntityField(field_name, cast(FieldKind, kind), required=spec.endswith("!")))
    *head, last = name.split("_")
    return Entity(
        name=name,
        plural="_".join([*head, pluralize(last)]),
        class_name="".join(part.capitalize() for part in name.split("_")),
        fields=tuple(fields),
    )


# Goal words -> the entity they imply. The first word of the goal found here wins, so
# "bookstore inventory" is about books, not generic inventory.
_CATALOGUE: tuple[tuple[tuple[str, ...], Entity], ...] = (
    (
        ("task", "todo", "to-do", "chore", "kanban"),
        make_entity("task", "title:str!", "description:str", "done:bool", "due_date:date"),
    ),
    (
        ("book", "bookstore", "bookshop", "library", "novel"),
        make_entity("book", "title:str!", "author:str", "quantity:int", "price:float"),
    ),
    (
        ("inventory", "product", "stock", "warehouse", "shop", "store", "e-commerce", "catalog"),
        make_entity("product", "name:str!", "sku:str", "quantity:int", "price:float"),
    ),
    (
        ("note", "notebook", "journal", "diary"),
        make_entity("note", "title:str!", "body:str", "pinned:bool"),
    ),
    (
        ("recipe", "cooking", "meal", "cookbook"),
        make_entity("recipe", "title:str!", "ingredients:str", "minutes:int"),
    ),
    (
        ("event", "calendar", "meetup", "conference"),
        make_entity("event", "title:str!", "location:str", "starts_on:date"),
    ),
    (
        ("booking", "reservation", "appointment", "restaurant"),
        make_entity(
            "booking", "guest_name:str!", "party_size:int", "starts_on:date", "confirmed:bool"
        ),
    ),
    (
        ("contact", "crm", "customer", "client", "address-book"),
        make_entity("contact", "name:str!", "email:str", "phone:str"),
    ),
    (
        ("expense", "budget", "budgeting", "spending", "finance"),
        make_entity("expense", "description:str!", "amount:float", "category:str", "spent_on:date"),
    ),
    (
        ("blog", "post", "article"),
        make_entity("post", "title:str!", "body:str", "published:bool"),
    ),
    (
        ("movie", "film", "watchlist"),
        make_entity("movie", "title:str!", "year:int", "rating:float", "watched:bool"),
    ),
    (
        ("ticket", "issue", "bug", "helpdesk", "support"),
        make_entity("ticket", "title:str!", "description:str", "status:str", "priority:int"),
    ),
    (
        ("employee", "staff", "hr", "payroll"),
        make_entity("employee", "name:str!", "email:str", "department:str"),
    ),
    (
        ("student", "school", "enrollment", "enrolment"),
        make_entity("student", "name:str!", "email:str", "grade_level:int"),
    ),
    (
        ("habit",),
        make_entity("habit", "name:str!", "target_per_week:int", "active:bool"),
    ),
    (
        ("workout", "fitness", "exercise", "gym"),
        make_entity("workout", "name:str!", "duration_minutes:int", "performed_on:date"),
    ),
    (
        ("song", "music", "playlist"),
        make_entity("song", "title:str!", "artist:str", "duration_seconds:int"),
    ),
    (
        ("order", "purchase"),
        make_entity("order", "customer_name:str!", "total:float", "status:str"),
    ),
)
_ENTITY_BY_WORD: dict[str, Entity] = {word: e for words, e in _CATALOGUE for word in words}

# Words after which the noun before them names the product's records ("plant tracker").
_PRODUCT_WORDS = frozenset((
    "api", "service", "app", "application", "system", "tracker", "manager", "management",
    "platform", "backend", "portal", "registry", "directory", "database", "crud", "tool",
    "site", "website", "log", "board", "planner"
))  # fmt: skip
# Never an entity: articles, adjectives, tech words, and names the generated code uses itself.
_NOT_ENTITIES = frozenset((
    "a", "an", "the", "my", "our", "your", "some", "simple", "small", "basic", "tiny",
    "minimal", "new", "full", "rest", "restful", "web", "http", "json", "crud", "python",
    "fastapi", "online", "mobile", "personal", "internal", "public", "private", "modern",
    "secure", "user", "account", "session", "token", "auth", "app", "api", "client", "data",
    "info", "test", "schema", "item", "sqlite"
))  # fmt: skip

_AUTH_WORDS = frozenset((
    "auth", "authn", "authz", "authentication", "authenticated", "authenticate",
    "authorization", "authorisation", "login", "logins", "signin", "signup", "sign-in",
    "sign-up", "log-in", "user", "users", "account", "accounts", "password", "passwords",
    "register", "registration", "multi-user", "per-user", "jwt", "oauth"
))  # fmt: skip
_AUTH_PHRASES = ("sign in", "sign up", "log in")
_DATA_SCIENCE_WORDS = frozenset((
    "analytics", "analytic", "predict", "predicts", "prediction", "predictions", "predictive",
    "forecast", "forecasts", "forecasting", "recommend", "recommends", "recommendation",
    "recommendations", "recommender", "ml", "metrics", "statistics", "stats", "insights",
    "dashboard", "dashboards"
))  # fmt: skip
_DATA_SCIENCE_PHRASES = ("machine learning", "data science", "data scientist")


def _words(goal: str) -> list[str]:
    return re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)*", goal.lower())


def _mentions(goal: str, words: frozenset[str], phrases: tuple[str, ...]) -> bool:
    text = " ".join(_words(goal))
    return any(word in words for word in _words(goal)) or any(p in text for p in phrases)


def needs_auth(goal: str) -> bool:
    """Does the goal ask for accounts (auth, login, users, sign-in...)?"""
    return _mentions(goal, _AUTH_WORDS, _AUTH_PHRASES)


def needs_data_science(goal: str) -> bool:
    """Does the goal ask for analytics, predictions, recommendations or metrics?"""
    return _mentions(goal, _DATA_SCIENCE_WORDS, _DATA_SCIENCE_PHRASES)


def _generic_entity(words: list[str]) -> Entity | None:
    """`plant` from "a plant watering tracker": the noun before a product word."""
    for index, word in enumerate(words):
        if word not in _PRODUCT_WORDS:
            continue
        for candidate in reversed(words[max(0, index - 3) : index]):
            name = singularize(candidate.replace("-", "_"))
            if candidate.endswith("ing") or candidate in _PRODUCT_WORDS:
                continue  # "watering", "management": describe the product, not its records
            if name in _NOT_ENTITIES or candidate in _NOT_ENTITIES:
                break
            if re.fullmatch(r"[a-z][a-z0-9_]{2,30}", name) and not keyword.iskeyword(name):
                return make_entity(name, "name:str!", "description:str", "active:bool")
            break
    return None


def main_entity(goal: str) -> Entity:
    """The records the goal is about, with 2-4 typed fields; `item` when nothing fits."""
    words = _words(goal)
    for word in words:
        entity = _ENTITY_BY_WORD.get(word) or _ENTITY_BY_WORD.get(singularize(word))
        if entity is not None:
            return entity
    return _generic_entity(words) or make_entity(
        "item", "name:str!", "description:str", "quantity:int"
    )


def project_title(goal: str, entity: Entity) -> str:
    """A short product name from the goal, safe inside any string literal we generate."""
    first = re.split(r"[.!?;\n]", goal.strip(), maxsplit=1)[0]
    first = re.sub(
        r"^\s*(please\s+)?(build|create|make|develop|write|implement|design|deliver|code)\s+"
        r"(me\s+|us\s+)?((a|an|the|some)\s+)?",
        "",
        first,
        flags=re.I,
    )
    first = re.split(r"\s+(with|that|which|where|using|so that)\s+", first, maxsplit=1)[0]
    title = " ".join(re.sub(r"[^A-Za-z0-9 -]", " ", first).split())[:60].strip()
    if not title:
        return f"{entity.class_name} service"
    return title[0].upper() + title[1:]


@dataclass(frozen=True)
class Blueprint:
    """Everything the templates need to know about the goal."""

    goal: str
    project: str
    entity: Entity
    auth: bool
    data_science: bool

    @classmethod
    def from_goal(cls, goal: str) -> Blueprint:
        entity = main_entity(goal)
        return cls(
            goal=" ".join(goal.split()) or "(no goal given)",
            project=project_title(goal, entity),
            entity=entity,
            auth=needs_auth(goal),
            data_science=needs_data_science(goal),
        )


# --------------------------------------------------------------------------- shared fragments


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    auth: bool
    body: str
    success: str
    errors: str


def endpoints(bp: Blueprint) -> list[Endpoint]:
    """The API contract; architecture, README and frontend all derive from this one list."""
    cls, route, auth = bp.entity.class_name, bp.entity.route, bp.auth
    guarded = "401, " if auth else ""
    found = []
    if auth:
        found += [
            Endpoint(
                "POST",
                "/auth/register",
                False,
                "`{username, password}`",
                "201 `{id, username}`",
                "409 taken, 422 invalid",
            ),
            Endpoint(
                "POST",
                "/auth/login",
                False,
                "`{username, password}`",
                "200 `{access_token, token_type, expires_at}`",
                "401",
            ),
        ]
    found += [
        Endpoint("POST", f"/{route}", auth, f"`{cls}`", f"201 `{cls}`", f"{guarded}422"),
        Endpoint("GET", f"/{route}", auth, "-", f"200 `[{cls}]`", guarded.rstrip(", ") or "-"),
        Endpoint("GET", f"/{route}/{{id}}", auth, "-", f"200 `{cls}`", f"{guarded}404"),
        Endpoint("PUT", f"/{route}/{{id}}", auth, f"`{cls}`", f"200 `{cls}`", f"{guarded}404, 422"),
        Endpoint("DELETE", f"/{route}/{{id}}", auth, "-", "204", f"{guarded}404"),
    ]
    return found


def _md_table_rows(rows: Iterable[Iterable[str]]) -> str:
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def _bullets(items: Iterable[str]) -> str:
    return "\n".join(f"- {item}" for item in items)


def field_table(entity: Entity) -> str:
    header = "| Field | Type | Required | Example |\n|---|---|---|---|\n"
    rows = [
        (
            f"`{f.name}`",
            f.python_type,
            "yes" if f.required else "no",
            f"`{json.dumps(f.sample(0))}`",
        )
        for f in entity.fields
    ]
    return header + _md_table_rows(rows)


def _py_literal(value: Any, indent: str = "") -> str:
    """Python source for JSON-like data, one dict key per line (readable generated code)."""
    if isinstance(value, dict):
        inner = indent + "    "
        items = "".join(
            f"{inner}{_py_literal(k)}: {_py_literal(v, inner)},\n" for k, v in value.items()
        )
        return "{\n" + items + indent + "}"
    if isinstance(value, list):
        inner = indent + "    "
        items = "".join(f"{inner}{_py_literal(v, inner)},\n" for v in value)
        return "[\n" + items + indent + "]"
    if isinstance(value, str):
        return json.dumps(value)  # double-quoted; valid Python for the ASCII we generate
    return repr(value)


def _py_tuple(names: Iterable[str]) -> str:
    items = [json.dumps(name) for name in names]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def sample_record(entity: Entity, variant: int) -> dict[str, Any]:
    return {f.name: f.sample(variant) for f in entity.fields}


def _column_ddl(f: EntityField) -> str:
    return {
        "str": (
            f"{f.name} TEXT NOT NULL CHECK (length({f.name}) > 0)"
            if f.required
            else f"{f.name} TEXT NOT NULL DEFAULT ''"
        ),
        "bool": f"{f.name} INTEGER NOT NULL DEFAULT 0 CHECK ({f.name} IN (0, 1))",
        "int": f"{f.name} INTEGER NOT NULL DEFAULT 0 CHECK ({f.name} >= 0)",
        "float": f"{f.name} REAL NOT NULL DEFAULT 0 CHECK ({f.name} >= 0)",
        "date": f"{f.name} TEXT",
    }[f.kind]


def schema_sql(bp: Blueprint) -> str:
    """SQLite DDL for the entity (owned by a user when the goal needs accounts)."""
    entity = bp.entity
    columns = ["id INTEGER PRIMARY KEY AUTOINCREMENT"]
    if bp.auth:
        columns.append("owner_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE")
    columns += [_column_ddl(f) for f in entity.fields]
    columns.append("created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))")
    indexes = (
        f"\nCREATE INDEX IF NOT EXISTS idx_{entity.plural}_owner ON {entity.plural} (owner_id);\n"
        if bp.auth
        else ""
    )
    table = tpl.render(
        tpl.ENTITY_TABLE_SQL,
        table=entity.plural,
        columns=",\n".join(f"    {column}" for column in columns),
        indexes=indexes,
    )
    return tpl.render(
        tpl.SCHEMA_SQL,
        project=bp.project,
        tables=(tpl.USERS_TABLES_SQL if bp.auth else "") + table,
    )


def _table_columns(conn: sqlite3.Connection, table: str) -> set[str]:
    # `table` is one of our own identifiers, never text from the schema being checked.
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _no_attach(action: int, *_: object) -> int:
    # The schema may come from another agent: it must not touch files outside `:memory:`.
    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


def schema_fits(schema: str, bp: Blueprint) -> bool:
    """Can the generated backend run on this (upstream) schema, unchanged, on every start?"""
    if '"""' in schema or "\\" in schema:
        return False  # would break the triple-quoted string the backend embeds it in
    needed = {bp.entity.plural: {"id", *(f.name for f in bp.entity.fields)}}
    if bp.auth:
        needed[bp.entity.plural].add("owner_id")
        needed["users"] = {"id", "username", "password_hash"}
        needed["sessions"] = {"token_hash", "user_id", "expires_at"}
    conn = sqlite3.connect(":memory:")
    conn.set_authorizer(_no_attach)
    try:
        conn.executescript(schema)
        conn.executescript(schema)  # the backend runs it on every connection
        return all(cols <= _table_columns(conn, table) for table, cols in needed.items())
    except sqlite3.Error:
        return False
    finally:
        conn.close()


# --------------------------------------------------------------------------- labels


def label_line(path: str, author: str, model: str) -> str:
    """The first line of every offline file, in that file's comment syntax."""
    text = (
        f"Produced by {author} with the offline model ({model}): deterministic template "
        "output, no LLM was called. Cost: $0.00."
    )
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith((".md", ".markdown")):
        return f"> {text}"
    if name.endswith((".html", ".htm", ".xml", ".svg")):
        return f"<!-- {text} -->"
    if name.endswith(".css"):
        return f"/* {text} */"
    if name.endswith((".js", ".ts", ".jsx", ".tsx")):
        return f"// {text}"
    if name.endswith(".sql"):
        return f"-- {text}"
    return f"# {text}"  # Python, requirements.txt, .gitignore, YAML, shell, TOML


def labelled(path: str, content: str, author: str, model: str) -> str:
    separator = "\n\n" if path.endswith(".md") else "\n"
    return label_line(path, author, model) + separator + content


_LABEL_RE = re.compile(r"Produced by (.+?) with the offline model \(([^)]+)\)")


def strip_label(content: str) -> str:
    """Content without its offline label line, e.g. to embed one file in another."""
    first, _, rest = content.partition("\n")
    return rest.lstrip("\n") if _LABEL_RE.search(first) else content


# --------------------------------------------------------------------------- role deliverables


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


def verdict_input(reviewer: str, findings: list[Finding], summary: str) -> dict[str, Any]:
    """The structured verdict of a review: any high-severity finding blocks."""
    return {
        "verdict": "block" if any(f.severity == "high" for f in findings) else "pass",
        "summary": summary,
        "findings": [
            {
                "source": reviewer,
                "severity": f.severity if f.severity != "info" else "low",
                "file": f.where.split(":")[0] or None,
                "message": f.text,
            }
            for f in findings
        ],
    }


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


def _stories(bp: Blueprint) -> str:
    e = bp.entity
    actor = "signed-in user" if bp.auth else "user"
    words = {"entity_words": e.words, "plural_words": e.plural_words, "route": e.route}
    parts = [tpl.render(tpl.CRUD_STORIES_MD, actor=actor, primary=e.primary.name, **words)]
    if bp.auth:
        parts.append(tpl.render(tpl.AUTH_STORIES_MD, **words))
    if bp.data_science:
        number = str(9 if bp.auth else 6)
        parts.append(
            tpl.render(
                tpl.METRICS_STORY_MD, number=number, actor=actor, plural_words=e.plural_words
            )
        )
    return "\n".join(parts).rstrip()


def business_analyst(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    doc = tpl.render(
        tpl.REQUIREMENTS_MD,
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
            _role_title(role),
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
    doc = tpl.render(
        tpl.PLAN_MD,
        project=bp.project,
        goal=bp.goal,
        milestones="\n".join(f"{n}. {m}" for n, m in enumerate(milestones, start=1)),
        task_rows=_md_table_rows(_plan_rows(bp)),
        risk_rows=_md_table_rows(risks),
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
    doc = tpl.render(
        tpl.DESIGN_MD,
        project=bp.project,
        entity_words=e.words,
        screens="\n\n".join(screens),
        flows="\n".join(f"{n}. {flow}" for n, flow in enumerate(flows, start=1)),
        wireframe=_wireframe(bp),
        control_rows=_md_table_rows(
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
    doc = tpl.render(
        tpl.ARCHITECTURE_MD,
        project=bp.project,
        backend_responsibility=(
            f"CRUD for `/{e.route}`"
            + (", registration, login and bearer-token auth" if bp.auth else "")
        ),
        tables=", ".join(f"`{t}`" for t in (["users", "sessions"] if bp.auth else []) + [e.plural]),
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
        endpoint_rows=_md_table_rows(
            (ep.method, f"`{ep.path}`", "yes" if ep.auth else "no", ep.body, ep.success, ep.errors)
            for ep in endpoints(bp)
        ),
        class_name=e.class_name,
        field_table=field_table(e),
        decisions="\n".join(f"{n}. {d}" for n, d in enumerate(_decisions(bp), start=1)),
    )
    return Deliverable({"docs/architecture.md": doc})


def database_engineer(job: Job) -> Deliverable:
    return Deliverable({"db/schema.sql": schema_sql(job.blueprint)})


# ---- backend


def _model_field(f: EntityField) -> str:
    default = {
        "str": "Field(min_length=1, max_length=200)"
        if f.required
        else 'Field(default="", max_length=2000)',
        "bool": "False",
        "int": "Field(default=0, ge=0)",
        "float": "Field(default=0.0, ge=0)",
        "date": "None",
    }[f.kind]
    return f"    {f.name}: {f.python_type} = {default}"


def _wrap_clause(clause: str, width: int = 84) -> list[str]:
    """A long SQL clause as pieces no wider than `width`, broken after commas."""
    pieces = [""]
    for item in clause.split(", "):
        if pieces[-1] and len(pieces[-1]) + len(item) + 2 > width:
            pieces[-1] += ","
            pieces.append(" " + item)
        else:
            pieces[-1] += (", " if pieces[-1] else "") + item
    return pieces


def _sql_constant(name: str, *clauses: str) -> str:
    """`NAME = ("clause" " clause")`: one string literal per clause, so lines stay short."""
    pieces = [p for n, c in enumerate(clauses) for p in _wrap_clause(c if n == 0 else " " + c)]
    return f"{name} = (\n" + "\n".join(f"    {json.dumps(p)}" for p in pieces) + "\n)"


def _sql_constants(bp: Blueprint) -> str:
    e = bp.entity
    names = [f.name for f in e.fields]
    select = f"SELECT {', '.join(['id', *names])} FROM {e.plural}"
    owner = " AND owner_id = :owner_id" if bp.auth else ""
    inserted = (["owner_id"] if bp.auth else []) + names
    return "\n".join(
        [
            _sql_constant(
                "INSERT_SQL",
                f"INSERT INTO {e.plural} ({', '.join(inserted)})",
                f"VALUES ({', '.join(':' + n for n in inserted)})",
            ),
            _sql_constant(
                "LIST_SQL",
                select,
                "WHERE owner_id = :owner_id ORDER BY id" if bp.auth else "ORDER BY id",
            ),
            _sql_constant("GET_SQL", select, f"WHERE id = :id{owner}"),
            _sql_constant(
                "UPDATE_SQL",
                f"UPDATE {e.plural} SET {', '.join(f'{n} = :{n}' for n in names)}",
                f"WHERE id = :id{owner}",
            ),
            _sql_constant("DELETE_SQL", f"DELETE FROM {e.plural}", f"WHERE id = :id{owner}"),
        ]
    )


def _app_imports(bp: Blueprint) -> str:
    has_date = any(f.kind == "date" for f in bp.entity.fields)
    stdlib = ["os", "sqlite3"] + (["hashlib", "hmac", "secrets"] if bp.auth else [])
    datetime_names = (["date"] if has_date else []) + (
        ["datetime", "timedelta", "timezone"] if bp.auth else []
    )
    lines = [f"import {name}" for name in sorted(stdlib)]
    lines.append("from collections.abc import Iterator")
    if datetime_names:
        lines.append(f"from datetime import {', '.join(datetime_names)}")
    lines += ["from pathlib import Path", "from typing import Annotated, Any", ""]
    lines.append(
        "from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response, status"
    )
    lines.append("from fastapi.middleware.cors import CORSMiddleware")
    if bp.auth:
        lines.append("from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer")
    lines.append("from pydantic import BaseModel, Field")
    return "\n".join(lines)


def backend_app(bp: Blueprint, schema: str) -> str:
    e = bp.entity
    return tpl.render(
        tpl.APP_PY,
        project=bp.project,
        plural_words=e.plural_words,
        auth_doc=(
            "\n\nUsers register and log in (POST /auth/register, /auth/login), then send the token\n"
            f"as `Authorization: Bearer <token>`; each user only ever sees their own {e.plural_words}."
            if bp.auth
            else ""
        ),
        imports=_app_imports(bp),
        auth_constants=tpl.APP_AUTH_CONSTANTS if bp.auth else "",
        schema=schema.strip(),
        sql_constants=_sql_constants(bp),
        class_name=e.class_name,
        entity_words=e.words,
        model_fields="\n".join(_model_field(f) for f in e.fields),
        auth_models=tpl.APP_AUTH_MODELS if bp.auth else "",
        scope_section=tpl.APP_AUTH_SCOPE if bp.auth else tpl.APP_OPEN_SCOPE,
        plural=e.plural,
        route=e.route,
        entity=e.name,
        factory_params=(
            "\n    db_path: str | Path = DEFAULT_DB_PATH, *, password_iterations: int = "
            "PBKDF2_ITERATIONS\n"
            if bp.auth
            else "db_path: str | Path = DEFAULT_DB_PATH"
        ),
        factory_body=(
            "    app.state.password_iterations = password_iterations\n"
            "    app.include_router(auth_router)"
            if bp.auth
            else ""
        ),
    )


def backend_tests(bp: Blueprint) -> str:
    e = bp.entity
    primary = e.primary.name
    invalid = [
        f"    {{}},  # missing {primary}",
        f'    {{**PAYLOAD, "{primary}": ""}},  # empty {primary}',
    ]
    for f in e.fields[1:]:
        if f.kind != "str":
            invalid.append(
                f"    {{**PAYLOAD, {json.dumps(f.name)}: {_py_literal(f.invalid_value)}}},  # not a {f.kind}"
            )
            break
    imports = [
        "from pathlib import Path",
        "from typing import Any",
        "",
        "import pytest",
        "from fastapi.testclient import TestClient",
        "",
        "from app import create_app",
    ]
    if bp.auth:
        imports[:0] = ["import sqlite3", "from contextlib import closing"]
    return tpl.render(
        tpl.TESTS_PY + (tpl.TESTS_AUTH_CASES if bp.auth else ""),
        project=bp.project,
        imports="\n".join(imports),
        route=e.route,
        payload=_py_literal(sample_record(e, 0)),
        updated=_py_literal(sample_record(e, 1)),
        invalid_payloads="\n".join(invalid),
        helpers=tpl.TESTS_AUTH_HELPERS if bp.auth else "",
        client_body=(
            "    # Few PBKDF2 iterations keep the suite fast; the service default stays at 600k.\n"
            '    return TestClient(create_app(tmp_path / "test.db", password_iterations=1_000))'
            if bp.auth
            else '    return TestClient(create_app(tmp_path / "test.db"))'
        ),
        headers_body=(
            '    return sign_in(client, "alice")'
            if bp.auth
            else '    """No accounts in this service: requests carry no credentials."""\n    return {}'
        ),
    )


def backend_engineer(job: Job) -> Deliverable:
    bp = job.blueprint
    upstream_schema = strip_label(job.upstream.get("db/schema.sql", ""))
    reuse = bool(upstream_schema.strip()) and schema_fits(upstream_schema, bp)
    schema = upstream_schema if reuse else strip_label(schema_sql(bp))
    auth_note = (
        "\nAuthenticated tests register users through the API; passwords are hashed with only "
        "1,000 PBKDF2 iterations there (`create_app(..., password_iterations=1_000)`) to keep "
        "the suite fast.\n"
        if bp.auth
        else ""
    )
    readme = tpl.render(
        tpl.BACKEND_README_MD,
        project=bp.project,
        plural_words=bp.entity.plural_words,
        endpoint_rows=_md_table_rows(
            (ep.method, f"`{ep.path}`", "bearer token" if ep.auth else "-") for ep in endpoints(bp)
        ),
        auth_note=auth_note
        + (
            "\nThe schema is the one from `db/schema.sql`.\n"
            if reuse
            else "\nThe schema is generated here (no usable `db/schema.sql` was delivered).\n"
        ),
    )
    return Deliverable(
        {
            "backend/app.py": backend_app(bp, schema),
            "backend/tests/conftest.py": tpl.CONFTEST_PY,
            "backend/tests/test_app.py": backend_tests(bp),
            "backend/requirements.txt": tpl.REQUIREMENTS_TXT,
            "backend/README.md": readme,
        }
    )


# ---- frontend

_INPUT_ATTRS: dict[FieldKind, str] = {
    "str": 'type="text" maxlength="200"',
    "bool": 'type="checkbox"',
    "int": 'type="number" min="0" step="1"',
    "float": 'type="number" min="0" step="0.01"',
    "date": 'type="date"',
}


def _form_field(f: EntityField) -> str:
    attrs = _INPUT_ATTRS[f.kind] + (" required" if f.required else "")
    if f.kind == "bool":
        return f'      <label class="check"><input name="{f.name}" {attrs}> {f.label}</label>'
    return f'      <label>{f.label} <input name="{f.name}" {attrs}></label>'


def frontend_engineer(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    fields = [
        {"name": f.name, "label": f.label, "kind": f.kind, "required": f.required} for f in e.fields
    ]
    html = tpl.render(
        tpl.INDEX_HTML,
        project=bp.project,
        auth_panel=tpl.INDEX_AUTH_PANEL if bp.auth else "",
        plural_title=e.plural_words.capitalize(),
        form_fields="\n".join(_form_field(f) for f in e.fields),
        entity_words=e.words,
        plural_words=e.plural_words,
    )
    js = tpl.render(
        tpl.APP_JS,
        project=bp.project,
        route=e.route,
        auth_required=json.dumps(bp.auth),
        entity_words=e.words,
        fields_json="[\n" + "".join(f"  {json.dumps(f)},\n" for f in fields) + "]",
        plural_words=e.plural_words,
        entity_title=e.words.capitalize(),
    )
    contract = api_contract_from(job.notes)
    if contract is not None:
        note, lines = contract
        # Built against what the backend said, not only the plan: say so where it is used.
        js = (
            f"// API contract from {note.from_task} ({note.from_role}), note #{note.seq} "
            f'"{note.subject}":\n' + "".join(f"//   {line}\n" for line in lines) + js
        )
    return Deliverable({"frontend/index.html": html, "frontend/app.js": js})


CONTRACT_SUBJECT = "API contract"
_CONTRACT_LINE = re.compile(r"^(?:GET|POST|PUT|PATCH|DELETE) /\S*", re.M)


def api_contract_note(bp: Blueprint) -> str:
    """What the backend engineer tells the frontend engineer: every endpoint it serves."""
    lines = [
        f"{ep.method} {ep.path}{' (bearer token)' if ep.auth else ''}: body {ep.body}, "
        f"{ep.success}; errors {ep.errors}"
        for ep in endpoints(bp)
    ]
    auth = (
        " Sign in with POST /auth/login and send `Authorization: Bearer <access_token>`."
        if bp.auth
        else ""
    )
    return (
        f"{bp.project} API at http://127.0.0.1:8000 (JSON bodies; backend/README.md has the "
        f"details).{auth}\n" + "\n".join(lines)
    )


def api_contract_from(notes: Iterable[ReceivedNote]) -> tuple[ReceivedNote, list[str]] | None:
    """The newest note from a backend engineer that lists endpoints, with those endpoints."""
    for note in reversed(list(notes)):
        found = _CONTRACT_LINE.findall(note.text)
        if note.from_role == "backend_engineer" and found:
            return note, found
    return None


# ---- reviews

Severity = Literal["high", "medium", "low", "info"]
_SEVERITIES: tuple[Severity, ...] = ("high", "medium", "low", "info")


@dataclass(frozen=True)
class Finding:
    severity: Severity
    where: str
    text: str


def _findings_md(findings: list[Finding]) -> str:
    if not findings:
        return "None."
    ordered = sorted(findings, key=lambda f: _SEVERITIES.index(f.severity))
    return "\n".join(
        f"{n}. **{f.severity}** `{f.where}`: {f.text}" for n, f in enumerate(ordered, start=1)
    )


_SQL_TEXT = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE|REPLACE|CREATE|DROP)\b")
_EXECUTE = frozenset({"execute", "executemany", "executescript"})


def _built_string(node: ast.expr) -> bool:
    """An f-string with values, `"..." % x`, `"..." + x` or `"...".format(x)`."""
    if isinstance(node, ast.JoinedStr):
        return any(isinstance(part, ast.FormattedValue) for part in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod | ast.Add):
        return True
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "format"
    )


def _sql_literal(node: ast.expr) -> bool:
    """Does the string part of a built string read like SQL?"""
    parts = [node] if isinstance(node, ast.Constant) else list(ast.walk(node))
    return any(
        isinstance(p, ast.Constant) and isinstance(p.value, str) and _SQL_TEXT.search(p.value)
        for p in parts
    )


def string_built_sql(source: str) -> list[int]:
    """Line numbers where SQL is assembled from strings (f-string, %, +, format) instead of
    bound parameters: the usual way SQL injection gets in."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    lines: set[int] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.expr):
            continue
        executes_built = (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in _EXECUTE
            and any(_built_string(arg) for arg in node.args[:1])
        )
        if executes_built or (_built_string(node) and _sql_literal(node)):
            lines.add(node.lineno)
    return sorted(lines)


def _has(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda source: compiled.search(source) is not None


def _lacks(pattern: str) -> Callable[[str], bool]:
    compiled = re.compile(pattern)
    return lambda source: compiled.search(source) is None


def _is_code(path: str) -> bool:
    return path.startswith(("backend/", "frontend/"))


def _sources(upstream: Mapping[str, str]) -> dict[str, str]:
    """The texts the review rules look at; `backend/tests` joins every test file."""
    tests = [text for path, text in sorted(upstream.items()) if path.startswith("backend/tests/")]
    found = {p: upstream[p] for p in ("backend/app.py", "frontend/app.js") if p in upstream}
    if tests:
        found["backend/tests"] = "\n".join(tests)
    return found


def _count_tests(upstream: Mapping[str, str]) -> tuple[int, int]:
    """(test functions, test files) among the delivered Python tests."""
    files = [p for p in upstream if _is_code(p) and re.search(r"(^|/)test_[^/]*\.py$", p)]
    count = sum(len(re.findall(r"^\s*(?:async\s+)?def test_\w+", upstream[p], re.M)) for p in files)
    return count, len(files)


@dataclass(frozen=True)
class CodeRule:
    """A finding about `where` when `applies(source)`; `severity=None` marks a strength."""

    where: str
    severity: Severity | None
    text: str
    applies: Callable[[str], bool]


_CODE_RULES = (
    CodeRule("backend/app.py", None, "An app factory (`create_app`) gives each test its own "
             "database.", _has(r"def create_app\(")),
    CodeRule("backend/app.py", None, "Pydantic models validate every request body.",
             _has(r"\(BaseModel\)")),
    CodeRule("backend/app.py", "low", "The list endpoint returns every record; add "
             "limit/offset paging before the table grows.", _lacks(r"\bLIMIT\b")),
    CodeRule("backend/app.py", "low", "Schema DDL runs on every connection; switch to "
             "versioned migrations once the schema starts to change.",
             _has(r"executescript\(SCHEMA\)")),
    CodeRule("backend/app.py", "low", "No logging; add request and audit logs before running "
             "it in production.", _lacks(r"import logging")),
    CodeRule("frontend/app.js", None, "The frontend renders API data with `textContent` only.",
             _lacks(r"\.innerHTML")),
    CodeRule("frontend/app.js", "medium", "`innerHTML` with API data allows script injection; "
             "use `textContent`.", _has(r"\.innerHTML")),
    CodeRule("frontend/app.js", "low", "Failed requests are not handled.", _lacks(r"\bcatch\b")),
)  # fmt: skip


def review_code(upstream: Mapping[str, str]) -> tuple[list[str], list[Finding]]:
    """(strengths, findings) of the delivered backend and frontend sources."""
    sources = _sources(upstream)
    tests, _ = _count_tests(upstream)
    strengths: list[str] = []
    findings: list[Finding] = []
    if not any(_is_code(p) for p in upstream):
        text = "No backend or frontend files were delivered; re-run the review once they exist."
        findings.append(Finding("medium", "upstream", text))
    if "backend/app.py" in sources:
        if tests:
            strengths.append(f"{tests} backend test functions cover the endpoints.")
        else:
            findings.append(Finding("high", "backend/tests", "The backend has no tests."))
        if "backend/requirements.txt" not in upstream:
            text = "No requirements.txt: the dependencies are undeclared."
            findings.append(Finding("medium", "backend", text))
        findings += [
            Finding("high", f"backend/app.py:{line}", "SQL built from strings; bind parameters.")
            for line in string_built_sql(sources["backend/app.py"])
        ]
    for rule in _CODE_RULES:
        if rule.where in sources and rule.applies(sources[rule.where]):
            if rule.severity is None:
                strengths.append(rule.text)
            else:
                findings.append(Finding(rule.severity, rule.where, rule.text))
    findings += [
        Finding("low", path, "Unfinished work marked TODO/FIXME.")
        for path in sorted(p for p in upstream if _is_code(p))
        if re.search(r"\b(TODO|FIXME|XXX)\b", upstream[path])
    ]
    return strengths, findings


def code_reviewer(job: Job) -> Deliverable:
    upstream = job.upstream
    code_files = sorted(p for p in upstream if _is_code(p))
    tests, test_files = _count_tests(upstream)
    strengths, findings = review_code(upstream)
    high = sum(f.severity == "high" for f in findings)
    verdict = "pass" if high == 0 else "changes_requested"
    doc = tpl.render(
        tpl.CODE_REVIEW_MD,
        file_list=_bullets(f"`{p}` ({len(upstream[p].splitlines())} lines)" for p in code_files)
        or "None.",
        test_count=str(tests),
        test_files=str(test_files),
        strengths=_bullets(strengths) or "None noted.",
        findings=_findings_md(findings),
        verdict=verdict,
        verdict_reason=(
            "no high-severity finding; the others are follow-ups"
            if high == 0
            else f"{high} high-severity finding(s) must be fixed first"
        ),
    )
    return Deliverable(
        {"reviews/code_review.md": doc},
        {"verdict": verdict, "findings": len(findings)},
        verdict_input("code_reviewer", findings, f"{tests} tests in {test_files} files reviewed"),
    )


@dataclass(frozen=True)
class SecurityCheck:
    name: str
    passes: Callable[[str], bool]
    evidence: str
    """What was found when the check passes."""
    severity: Severity
    problem: str
    """The finding when it fails."""
    where: str = "backend/app.py"
    accounts_only: bool = False
    """Only meaningful for a service with user accounts."""


_SECURITY_CHECKS = (
    SecurityCheck("SQL injection", lambda src: not string_built_sql(src),
                  "every `execute` binds its parameters", "high",
                  "SQL is assembled from strings; bind parameters instead."),
    SecurityCheck("Hard-coded secrets",
                  _lacks(r"(SECRET|API_KEY|PASSWORD|TOKEN)\w*\s*=\s*[\"'][^\"']{8,}[\"']"),
                  "none found", "high", "A secret is hard-coded in the source."),
    SecurityCheck("CORS", _lacks(r"allow_origins\s*=\s*\[\s*[\"']\*"), "explicit origin list",
                  "medium", "CORS allows every origin."),
    SecurityCheck("Password hashing", _has(r"pbkdf2_hmac|bcrypt|argon2|scrypt"),
                  "slow KDF (PBKDF2/bcrypt/argon2/scrypt)", "high",
                  "Passwords are not hashed with a slow, salted KDF.", accounts_only=True),
    SecurityCheck("Per-user salt", _has(r"token_bytes|urandom|gensalt"), "random salt per hash",
                  "medium", "Password hashes are not salted per user.", accounts_only=True),
    SecurityCheck("Constant-time comparison", _has(r"compare_digest"), "`hmac.compare_digest`",
                  "medium", "Secrets are compared with `==`, which leaks timing.",
                  accounts_only=True),
    SecurityCheck("Random bearer tokens", _has(r"secrets\.token_(urlsafe|hex)"),
                  "`secrets` CSPRNG tokens", "high", "Tokens are not generated with `secrets`.",
                  accounts_only=True),
    SecurityCheck("Tokens stored hashed", _has(r"token_hash"), "sessions keyed by a digest",
                  "low", "Tokens are stored in clear text.", accounts_only=True),
    SecurityCheck("Token expiry", _has(r"expires_at"), "`expires_at` checked on every request",
                  "medium", "Tokens never expire.", accounts_only=True),
    SecurityCheck("Per-user isolation", _has(r"owner_id = :owner_id"),
                  "record queries filter by `owner_id`", "high",
                  "Records are not scoped to their owner.", accounts_only=True),
    SecurityCheck("Login rate limiting", _has(r"(?i)rate.?limit|throttl|lockout"),
                  "limiter present", "medium", "`/auth/login` has no rate limiting or lockout; "
                  "put the API behind a rate-limiting proxy before going public.",
                  accounts_only=True),
    SecurityCheck("Unauthenticated access tested", _has(r"\b401\b"),
                  "tests assert 401 without a valid token", "medium",
                  "No test proves that requests without a token are rejected.",
                  where="backend/tests", accounts_only=True),
    SecurityCheck("Frontend XSS", _lacks(r"\.innerHTML"), "API data rendered with `textContent`",
                  "medium", "`innerHTML` with API data allows script injection.",
                  where="frontend/app.js"),
    SecurityCheck("Token storage", _lacks(r"localStorage\.setItem\(\"token\""),
                  "`sessionStorage`, cleared with the tab", "low",
                  "The token persists in `localStorage`.", where="frontend/app.js",
                  accounts_only=True),
)  # fmt: skip


def _security_checks(
    bp: Blueprint, upstream: Mapping[str, str]
) -> tuple[list[tuple[str, str, str]], list[Finding]]:
    """(check, result, evidence) rows and findings for the delivered backend and frontend."""
    sources = _sources(upstream)
    accounts = bp.auth or "/login" in sources.get("backend/app.py", "")
    rows: list[tuple[str, str, str]] = []
    findings: list[Finding] = []
    if "backend/app.py" not in sources:
        rows.append(("Backend source", "n/a", "no `backend/app.py` delivered"))
        text = "No backend to review; re-run the review once it is delivered."
        findings.append(Finding("medium", "upstream", text))
    elif not accounts:
        text = "No authentication, by design (the goal asks for no accounts): keep the service "
        text += "on a private network."
        findings.append(Finding("info", "backend/app.py", text))
    for check in _SECURITY_CHECKS:
        if check.where not in sources or (check.accounts_only and not accounts):
            continue
        if check.passes(sources[check.where]):
            rows.append((check.name, "pass", check.evidence))
        else:
            rows.append((check.name, "FAIL", check.problem))
            findings.append(Finding(check.severity, check.where, check.problem))
    return rows, findings


def security_reviewer(job: Job) -> Deliverable:
    rows, findings = _security_checks(job.blueprint, job.upstream)
    counts = {s: sum(f.severity == s for f in findings) for s in _SEVERITIES}
    verdict = "pass" if counts["high"] == 0 else "fail"
    reviewed = [p for p in ("backend/app.py", "frontend/app.js") if p in job.upstream]
    doc = tpl.render(
        tpl.SECURITY_REVIEW_MD,
        scope=", ".join(f"`{p}`" for p in reviewed) or "no source files were delivered",
        check_rows=_md_table_rows(rows),
        findings=_findings_md(findings),
        verdict=verdict,
        high=str(counts["high"]),
        medium=str(counts["medium"]),
        low=str(counts["low"]),
    )
    return Deliverable(
        {"reviews/security_review.md": doc},
        {"verdict": verdict, "high": counts["high"]},
        verdict_input("security_reviewer", findings, f"{len(rows)} security checks run"),
    )


# ---- data science

_FREE_TEXT = frozenset(
    ["description", "body", "notes", "ingredients", "email", "phone", "sku", "bio"]
)


def data_scientist(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    kinds: dict[str, list[str]] = {"bool": [], "numeric": [], "category": [], "date": []}
    for f in e.fields:
        if f.kind == "bool":
            kinds["bool"].append(f.name)
        elif f.kind in ("int", "float"):
            kinds["numeric"].append(f.name)
        elif f.kind == "date":
            kinds["date"].append(f.name)
        elif not f.required and f.name not in _FREE_TEXT:
            kinds["category"].append(f.name)
    by_name = {f.name: f for f in e.fields}
    # Expected doctest values for SAMPLE, whose two records use sample variants 0 and 1.
    examples: list[tuple[str, Any]] = []
    if kinds["bool"]:
        examples.append((f"{kinds['bool'][0]}_rate", 0.5))
    if kinds["numeric"]:
        low, high = (float(by_name[kinds["numeric"][0]].sample(v)) for v in (0, 1))
        examples.append(
            (kinds["numeric"][0], {"min": low, "mean": round((low + high) / 2, 3), "max": high})
        )
    if kinds["category"]:
        name = kinds["category"][0]
        examples.append((f"{name}_counts", {by_name[name].sample(v): 1 for v in (0, 1)}))
    if kinds["date"]:
        first, last = (by_name[kinds["date"][0]].sample(v) for v in (0, 1))
        examples.append((kinds["date"][0], {"with_value": 2, "first": first, "last": last}))
    doctest_lines = "".join(f'\n    >>> summary["{key}"]\n    {value!r}' for key, value in examples)
    metric_rows = (
        [
            (f"`{n}_rate`", f"Share of {e.plural_words} with `{n}` true (0-1).")
            for n in kinds["bool"]
        ]
        + [(f"`{n}`", f"min / mean / max of `{n}`.") for n in kinds["numeric"]]
        + [
            (
                f"`{n}_counts`",
                f"{e.plural_words.capitalize()} per `{n}` value, most frequent first.",
            )
            for n in kinds["category"]
        ]
        + [
            (f"`{n}`", f"How many {e.plural_words} have `{n}`, first and last value.")
            for n in kinds["date"]
        ]
    )
    code = tpl.render(
        tpl.METRICS_PY,
        plural_words=e.plural_words,
        boolean_fields=_py_tuple(kinds["bool"]) if kinds["bool"] else "()",
        numeric_fields=_py_tuple(kinds["numeric"]) if kinds["numeric"] else "()",
        category_fields=_py_tuple(kinds["category"]) if kinds["category"] else "()",
        date_fields=_py_tuple(kinds["date"]) if kinds["date"] else "()",
        sample=_py_literal([sample_record(e, 0), sample_record(e, 1)]),
        doctest_lines=doctest_lines,
    )
    doc = tpl.render(
        tpl.METRICS_MD,
        project=bp.project,
        plural_words=e.plural_words,
        route=e.route,
        metric_rows=_md_table_rows(metric_rows),
    )
    return Deliverable({"analytics/metrics.md": doc, "analytics/metrics.py": code})


# ---- cleanup

_FOLDERS = {
    "docs": "Requirements, delivery plan, UX design and architecture.",
    "db": "SQLite schema.",
    "backend": "FastAPI service and its pytest suite.",
    "frontend": "Static HTML/JS client for the API.",
    "reviews": "Code and security reviews of the delivered code.",
    "analytics": "Metrics over the records, in pure Python.",
}


def _provenance(path: str, content: str) -> tuple[str, str]:
    """(agent, model) from a file's label line; real-model files carry none."""
    match = _LABEL_RE.search("\n".join(content.splitlines()[:3]))
    return (match.group(1), f"{match.group(2)} (offline)") if match else ("not labelled", "-")


def cleanup_agent(job: Job) -> Deliverable:
    bp = job.blueprint
    own = ROLE_DELIVERABLES["cleanup_agent"]
    files = sorted(set(job.upstream) - set(own))
    tops = sorted({p.split("/", 1)[0] for p in files if "/" in p})
    layout = [(f"`{top}/`", _FOLDERS.get(top, "Files delivered by the pipeline.")) for top in tops]
    layout += [("`README.md`", "This overview."), ("`.gitignore`", "Files git should not track.")]
    provenance = [(f"`{p}`", *_provenance(p, job.upstream[p])) for p in files]
    labelled_count = sum(agent != "not labelled" for _, agent, _ in provenance)
    provenance += [(f"`{p}`", job.author, f"{job.model} (offline)") for p in own]
    note = (
        "All files above come from the offline model: deterministic templates, no LLM was "
        "called, so the run cost $0.00."
        if labelled_count == len(files)
        else f"{labelled_count} of {len(files)} delivered files carry an offline label; the rest "
        "were written by a real model."
    )
    readme = tpl.render(
        tpl.README_MD,
        project=bp.project,
        goal=bp.goal,
        layout_rows=_md_table_rows(layout),
        provenance_rows=_md_table_rows(provenance),
        provenance_note=note,
    )
    return Deliverable({"README.md": readme, ".gitignore": tpl.GITIGNORE})


def generic_notes(job: Job) -> Deliverable:
    """Roles without a template still get an answer: notes for a human to pick up."""
    bp = job.blueprint
    slug = re.sub(r"[^a-z0-9_-]+", "_", job.role.lower()).strip("_") or "agent"
    doc = tpl.render(
        tpl.GENERIC_NOTES_MD,
        role_title=job.author,
        project=bp.project,
        goal=bp.goal,
        role=slug,
        entity=bp.entity.name,
        field_names=", ".join(f.name for f in bp.entity.fields),
        needs_auth=json.dumps(bp.auth),
        needs_data_science=json.dumps(bp.data_science),
        upstream=_bullets(f"`{p}`" for p in sorted(job.upstream)) or "None.",
    )
    return Deliverable({f"docs/{slug}.md": doc})


ROLE_BUILDERS: dict[str, Callable[[Job], Deliverable]] = {
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


def _role_title(role: str) -> str:
    known = roles.ROLES.get(role)
    return known.title if known else (role.replace("_", " ").strip().capitalize() or "Agent")


def deliverables(
    role: str,
    goal: str,
    upstream: Mapping[str, str],
    model: str,
    notes: Iterable[ReceivedNote] = (),
) -> Deliverable:
    """The labelled files and outputs `role` delivers for `goal`: the offline model's answer."""
    author = _role_title(role)
    blueprint = Blueprint.from_goal(goal)
    job = Job(
        role=role,
        author=author,
        model=model,
        blueprint=blueprint,
        upstream=upstream,
        notes=tuple(notes),
    )
    result = ROLE_BUILDERS.get(role, generic_notes)(job)
    files = {path: labelled(path, text, author, model) for path, text in result.files.items()}
    return Deliverable(files, result.outputs, result.verdict)


# --------------------------------------------------------------------------- validation


def validation_input(delivered: Mapping[str, str]) -> dict[str, Any]:
    """The offline validator's `submit_validation` input for the files a task delivered.

    It cannot judge substance, so it checks what it can deterministically: the task
    delivered files, and none of them is empty (its own label line aside).
    """
    issues = [
        f"{path} is empty: write its full content with write_file."
        for path, content in sorted(delivered.items())
        if not strip_label(content).strip()
    ]
    if not delivered:
        issues.append(
            "The task delivered no files: write every deliverable its role's contract names "
            "with write_file."
        )
    return {
        "passed": not issues,
        "issues": issues,
        "summary": f"{len(delivered)} delivered files checked: "
        + ("all have content." if not issues else f"{len(issues)} issues."),
    }


# --------------------------------------------------------------------------- provider


def _text(message: Message) -> str:
    return "\n".join(block.text for block in message.content if isinstance(block, TextBlock))


SUMMARIZER_ROLE = "summarizer"
_OUTLINE_LINE = re.compile(r"^\s*(#|def |class |async def |CREATE |[-*] |\w+:|@)")


def _extract(prompt: str, max_tokens: int) -> str:
    """The offline summarizer: the text's outline (headings, definitions), within the limit."""
    body = re.sub(r"</?(artifact|part-summary)[^>]*>", "", prompt)
    lines = [line for line in body.splitlines() if _OUTLINE_LINE.match(line)] or body.splitlines()
    summary, size, limit = [], 0, max_tokens * 4
    for line in dict.fromkeys(lines):  # repeated lines once, in order
        if size + len(line) + 1 > limit:
            break
        summary.append(line)
        size += len(line) + 1
    return "Offline summary (deterministic outline, no LLM):\n" + "\n".join(summary)


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()


def _describe_call(use: ToolUseBlock | None, tool_id: str) -> str:
    if use is None:
        return tool_id
    return f"{use.name} {use.input['path']}" if "path" in use.input else use.name


def _peers_with_role(request: ModelRequest, first: str, role: str, tool: str) -> list[str]:
    """Peer tasks of `role` named in the task message, when the request offers `tool`."""
    if not any(t.name == tool for t in request.tools):
        return []
    return [tid for tid, peer_role in parse_peers(first).items() if peer_role == role]


def _contract_readers(request: ModelRequest, first: str) -> list[str]:
    """A backend engineer tells the frontend engineers running beside it its endpoints."""
    if request.role != "backend_engineer" or parse_review_request(first) is not None:
        return []
    return _peers_with_role(request, first, "frontend_engineer", "post_note")


def _awaited_backend(request: ModelRequest, first: str) -> str | None:
    """The backend task a frontend engineer waits for before writing its API client."""
    if request.role != "frontend_engineer" or parse_review_request(first) is not None:
        return None
    if api_contract_from(parse_notes(request.messages)) is not None:
        return None  # the contract is already here
    backends = _peers_with_role(request, first, "backend_engineer", "wait_for_note")
    return backends[0] if backends else None


def _wait_for_contract(
    request: ModelRequest, first: str, model: str, backend: str
) -> list[ContentBlock]:
    role_slug = re.sub(r"[^a-z0-9_]", "", request.role) or "agent"
    return [
        TextBlock(
            text=f"Offline model ({model}, deterministic, no LLM): waiting for the API "
            f"contract from {backend} before writing the frontend."
        ),
        ToolUseBlock(
            id=f"toolu_off_{role_slug}_{_digest(first)[:8]}_wait",
            name="wait_for_note",
            input={"from": backend, "timeout_seconds": 300},
        ),
    ]


def _delivery_turn(request: ModelRequest) -> int:
    """The turn that writes the deliverables: the first, or the one after waiting for a note."""
    answers = [m for m in request.messages if m.role == "assistant"]
    waited = bool(answers) and any(
        isinstance(block, ToolUseBlock) and block.name == "wait_for_note"
        for block in answers[0].content
    )
    return 1 if waited else 0


class OfflineProvider:
    """Deterministic, network-free `LLMProvider` that plays every role from templates."""

    name = "offline"
    default_model = OFFLINE_MODEL

    def __init__(self, latency_seconds: float = 0.0, call_log: Path | None = None) -> None:
        # Simulated model latency, to exercise timeouts, heartbeats and crash recovery.
        self.latency_seconds = latency_seconds
        # One JSON line per call is appended here, so tests can count calls across processes.
        self.call_log = Path(call_log) if call_log is not None else None

    async def complete(self, request: ModelRequest) -> ModelResponse:
        turn = sum(message.role == "assistant" for message in request.messages)
        first = _text(request.messages[0]) if request.messages else ""
        response_id = "msg_offline_" + _digest(request.role, turn, first)[:24]
        self._log_call(request, turn, response_id)
        if self.latency_seconds > 0:
            await asyncio.sleep(self.latency_seconds)
        model = request.model or self.default_model
        stop: StopReason
        content: list[ContentBlock]
        if request.role == SUMMARIZER_ROLE:
            content, stop = [TextBlock(text=_extract(first, request.max_tokens))], "end_turn"
        elif turn == 0 and (backend := _awaited_backend(request, first)) is not None:
            content, stop = _wait_for_contract(request, first, model, backend), "tool_use"
        elif turn == _delivery_turn(request):
            content, stop = self._deliver(request, first, model), "tool_use"
        else:
            content, stop = [TextBlock(text=self._summary(request, model))], "end_turn"
        output_chars = len(json.dumps([block.model_dump() for block in content]))
        input_chars = len(request.system) + sum(
            len(message.model_dump_json()) for message in request.messages
        )
        return ModelResponse(
            id=response_id,
            model=model,
            content=content,
            stop_reason=stop,
            usage=Usage(input_tokens=_tokens(input_chars), output_tokens=_tokens(output_chars)),
        )

    def cost_usd(self, model: str, usage: Usage) -> float:
        return 0.0

    def _log_call(self, request: ModelRequest, turn: int, response_id: str) -> None:
        if self.call_log is None:
            return
        self.call_log.parent.mkdir(parents=True, exist_ok=True)
        # `id` is the response id the ledger stores, so a logged call maps to its ledger row.
        line = json.dumps(
            {
                "role": request.role,
                "turn": turn,
                "pid": os.getpid(),
                "id": response_id,
                "at": round(time.time(), 3),
            }
        )
        # One write of one short line in append mode: concurrent workers do not interleave.
        with self.call_log.open("a", encoding="utf-8") as log:
            log.write(line + "\n")
            log.flush()

    def _deliver(self, request: ModelRequest, first: str, model: str) -> list[ContentBlock]:
        # The digest keeps ids unique across tasks (and revisions) of the same role.
        role_slug = re.sub(r"[^a-z0-9_]", "", request.role) or "agent"
        prefix = f"toolu_off_{role_slug}_{_digest(first)[:8]}"
        if request.role == VALIDATOR_ROLE:
            result = validation_input(parse_upstream(first))
            verdict = "passes" if result["passed"] else f"fails: {len(result['issues'])} issues"
            return [
                TextBlock(
                    text=f"Offline model ({model}, deterministic, no LLM): the work {verdict}."
                ),
                ToolUseBlock(id=f"{prefix}_1", name="submit_validation", input=result),
            ]
        reviewed = parse_review_request(first)
        if reviewed is not None:
            # Supervision: the offline model accepts what its own templates produced.
            accept = {"verdict": "pass", "summary": f"{reviewed}: accepted by {request.role}"}
            return [
                TextBlock(
                    text=f"Offline model ({model}, deterministic, no LLM): reviewing {reviewed}."
                ),
                ToolUseBlock(id=f"{prefix}_1", name="submit_verdict", input=accept),
            ]
        goal = parse_goal(first)
        made = deliverables(
            request.role, goal, parse_upstream(first), model, parse_notes(request.messages)
        )
        calls: list[tuple[str, dict[str, Any]]] = [
            ("write_file", {"path": path, "content": content})
            for path, content in made.files.items()
        ]
        if made.outputs:
            calls.append(("set_outputs", {"outputs": made.outputs}))
        if made.verdict and any(tool.name == "submit_verdict" for tool in request.tools):
            calls.append(("submit_verdict", made.verdict))
        recorded = f" and recording {', '.join(made.outputs)}" if made.outputs else ""
        contract_to = _contract_readers(request, first)
        calls.extend(
            (
                "post_note",
                {
                    "to": task_id,
                    "subject": CONTRACT_SUBJECT,
                    "text": api_contract_note(Blueprint.from_goal(goal)),
                },
            )
            for task_id in contract_to
        )
        telling = f", telling {', '.join(contract_to)} the API contract" if contract_to else ""
        intro = TextBlock(
            text=f"Offline model ({model}, deterministic, no LLM): writing "
            f"{', '.join(made.files)}{recorded}{telling}."
        )
        return [
            intro,
            *(
                ToolUseBlock(id=f"{prefix}_{n}", name=name, input=data)
                for n, (name, data) in enumerate(calls, start=1)
            ),
        ]

    @staticmethod
    def _summary(request: ModelRequest, model: str) -> str:
        uses = {
            block.id: block
            for message in request.messages
            if message.role == "assistant"
            for block in message.content
            if isinstance(block, ToolUseBlock)
        }
        results = {
            block.tool_use_id: block
            for message in request.messages
            if message.role == "user"
            for block in message.content
            if isinstance(block, ToolResultBlock)
        }
        written = [
            str(use.input.get("path"))
            for tool_id, use in uses.items()
            if use.name == "write_file" and tool_id in results and not results[tool_id].is_error
        ]
        outputs = [
            use.input.get("outputs", {})
            for tool_id, use in uses.items()
            if use.name == "set_outputs" and tool_id in results and not results[tool_id].is_error
        ]
        failed = [
            f"{_describe_call(uses.get(tool_id), tool_id)}: {result.content}"
            for tool_id, result in results.items()
            if result.is_error
        ]
        posted = [
            use.input
            for tool_id, use in uses.items()
            if use.name == "post_note" and tool_id in results and not results[tool_id].is_error
        ]
        parts = [f"Offline model ({model}): done."]
        parts.append(f"Wrote {', '.join(written)}." if written else "Wrote no files.")
        for recorded in outputs:
            parts.append(f"Recorded outputs {json.dumps(recorded, sort_keys=True)}.")
        for sent in posted:
            parts.append(f"Posted note {sent.get('subject')!r} to {sent.get('to')}.")
        contract = api_contract_from(parse_notes(request.messages))
        if contract is not None and any(path.startswith("frontend/") for path in written):
            received, lines = contract
            parts.append(
                f"API contract from {received.from_task} ({received.from_role}), used in the "
                f"frontend: {', '.join(lines)}."
            )
        if failed:
            parts.append(f"{len(failed)} tool call(s) failed: {'; '.join(failed)}.")
        return " ".join(parts)
