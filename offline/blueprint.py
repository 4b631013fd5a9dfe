"""What a goal implies: the records it is about, their fields, whether it needs accounts or
analytics, and the API contract every deliverable derives from.

Goal analysis is word matching, not understanding: the first catalogue word in the goal picks
the entity, and a noun before a product word ("plant tracker") names one the catalogue lacks.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

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


def sample_record(entity: Entity, variant: int) -> dict[str, Any]:
    return {f.name: f.sample(variant) for f in entity.fields}
