"""The repository map over a small but realistic package: outlines, ranking, budget, tree."""

from __future__ import annotations

import re

from agents.repomap import (
    MAP_HEADING,
    RepoOutline,
    Symbol,
    build_outline,
    outline_json,
    render_map,
)

PACKAGE = {
    "app/__init__.py": '"""The shop application."""\n',
    "app/db.py": '''"""Database sessions."""
from __future__ import annotations

from collections.abc import Iterator


class Session:
    """One unit of work against the database."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url

    def commit(self) -> None:
        """Write what the session changed."""


def get_session(url: str = "sqlite://") -> Iterator[Session]:
    yield Session(url)
''',
    "app/auth/__init__.py": "",
    "app/auth/models.py": '''"""Accounts."""
from dataclasses import dataclass, field

from app.db import Session


@dataclass(frozen=True)
class User:
    """A person who can sign in."""

    name: str
    roles: list[str] = field(default_factory=list)

    @property
    def is_admin(self) -> bool:
        """Whether the user may manage other users."""
        return "admin" in self.roles

    @classmethod
    async def load(cls, session: Session, name: str) -> "User | None":
        return None

    @staticmethod
    def hash_password(password: str, /, salt: bytes = b"", *rounds: int, **options: str) -> str:
        return password

    class Meta:
        table = "users"
''',
    "app/auth/tokens.py": '''from .models import User


def issue_token(user: User, *, ttl: int = 3600) -> str:
    """A signed bearer token for the user."""
    return user.name
''',
    "app/auth/routes.py": '''"""HTTP routes of sign-in and sign-out."""
from fastapi import APIRouter, Depends

from ..db import Session, get_session
from . import tokens
from .models import User

router = APIRouter()


@router.post("/login")
async def login(form: LoginForm, session: Session = Depends(get_session)) -> Token:
    """Sign a user in and answer a bearer token.

    Checks the password against the stored hash.
    """


@router.post("/logout")
async def logout(user: User) -> None: ...


class LoginForm(BaseModel):
    """What the login page posts."""

    username: str

    def normalized(self) -> "LoginForm":
        return self
''',
    "app/billing/__init__.py": "",
    "app/billing/invoice.py": '''"""Invoices and their delivery."""
from decimal import Decimal

from app.db import Session


class Invoice:
    """What a customer owes for one period."""

    def total(self, *, currency: str = "EUR") -> Decimal:
        return Decimal(0)


async def send_invoice(invoice: Invoice, session: Session, retries: int = 3) -> bool:
    """Email the invoice to its customer."""
    return True
''',
    "app/billing/broken.py": "def half(:\n    return\n",
    "web/login.ts": """import { post } from "./http";

/** Post the login form and keep the token. */
export async function submitLogin(user: string, password = ""): Promise<string> {
  return post("/login", { user, password });
}

export class LoginPage extends Page {
  render(): void {}
}
""",
    "web/http.js": "export const post = (url, body) => fetch(url, { method: 'POST', body });\n",
    "README.md": "# Shop\n\nA small shop.\n",
    "pyproject.toml": '[project]\nname = "shop"\n',
    **{
        f"tests/test_{name}.py": f"def test_{name}() -> None:\n    assert {name}() is not None\n"
        for name in ("auth", "billing", "db", "tokens", "routes", "invoice", "web")
    },
}

QUERY = "Add rate limiting to the login route"


def symbols_of(path: str) -> list[Symbol]:
    [found] = [f for f in build_outline(PACKAGE).files if f.path == path]
    return found.symbols


def outlined(text: str) -> list[str]:
    """The files whose outlines a map shows, in its order."""
    return re.findall(r"^### (\S+) ", text, re.M)


def test_every_file_is_listed_with_its_language_and_lines() -> None:
    outline = build_outline(PACKAGE)
    assert [f.path for f in outline.files] == sorted(PACKAGE)
    languages = {f.path: f.language for f in outline.files}
    assert languages["app/db.py"] == "python"
    assert languages["web/login.ts"] == "typescript"
    assert languages["web/http.js"] == "javascript"
    assert languages["README.md"] == "markdown"
    assert languages["pyproject.toml"] == "toml"
    lines = {f.path: f.lines for f in outline.files}
    assert (
        lines["app/db.py"] == 18 and lines["README.md"] == 3 and lines["app/auth/__init__.py"] == 0
    )


def test_python_signatures_are_exact() -> None:
    db = {s.name: s for s in symbols_of("app/db.py")}
    assert (
        db["get_session"].signature
        == "def get_session(url: str = 'sqlite://') -> Iterator[Session]"
    )
    assert db["get_session"].kind == "function" and db["get_session"].line == 17
    assert db["Session"].signature == "class Session"
    [login, logout, form] = symbols_of("app/auth/routes.py")
    assert login.signature == (
        "async def login(form: LoginForm, session: Session = Depends(get_session)) -> Token"
    )
    assert login.decorators == ["router.post('/login')"]
    assert login.doc == "Sign a user in and answer a bearer token."
    assert logout.signature == "async def logout(user: User) -> None" and logout.doc == ""
    assert form.signature == "class LoginForm(BaseModel)"
    [send] = [s for s in symbols_of("app/billing/invoice.py") if s.name == "send_invoice"]
    assert send.signature == (
        "async def send_invoice(invoice: Invoice, session: Session, retries: int = 3) -> bool"
    )


def test_methods_and_nested_classes_sit_under_their_class() -> None:
    [user] = symbols_of("app/auth/models.py")
    assert (user.kind, user.decorators, user.doc) == (
        "class",
        ["dataclass(frozen=True)"],
        "A person who can sign in.",
    )
    members = {m.name: m for m in user.members}
    assert list(members) == ["is_admin", "load", "hash_password", "Meta"]
    assert members["is_admin"].kind == "method"
    assert members["is_admin"].decorators == ["property"]
    assert members["is_admin"].signature == "def is_admin(self) -> bool"
    assert members["load"].signature == (
        "async def load(cls, session: Session, name: str) -> 'User | None'"
    )
    assert members["hash_password"].signature == (
        "def hash_password(password: str, /, salt: bytes = b'', *rounds: int, **options: str) -> str"
    )
    assert members["Meta"].kind == "class" and members["Meta"].members == []
    [session] = [s for s in symbols_of("app/db.py") if s.name == "Session"]
    assert [(m.name, m.signature) for m in session.members] == [
        ("__init__", "def __init__(self, url: str, *, echo: bool = False) -> None"),
        ("commit", "def commit(self) -> None"),
    ]


def test_imports_are_absolute_module_names() -> None:
    outline = {f.path: f for f in build_outline(PACKAGE).files}
    assert outline["app/auth/routes.py"].imports == [
        "fastapi",
        "app.db",
        "app.auth.tokens",
        "app.auth.models",
    ]
    assert outline["app/auth/tokens.py"].imports == ["app.auth.models"]
    assert outline["web/login.ts"].imports == ["./http"]


def test_a_file_that_does_not_parse_keeps_its_path_without_symbols() -> None:
    [broken] = [f for f in build_outline(PACKAGE).files if f.path == "app/billing/broken.py"]
    assert (broken.language, broken.lines, broken.symbols, broken.imports) == ("python", 2, [], [])
    assert "    broken.py\n" in render_map(build_outline(PACKAGE), QUERY, 10_000)


def test_typescript_and_javascript_are_outlined_with_tree_sitter() -> None:
    [submit, page] = symbols_of("web/login.ts")
    assert submit.signature == (
        'async function submitLogin(user: string, password = ""): Promise<string>'
    )
    assert (submit.kind, submit.line, submit.doc) == (
        "function",
        4,
        "Post the login form and keep the token.",
    )
    assert page.signature == "class LoginPage extends Page"
    assert [(m.kind, m.signature) for m in page.members] == [("method", "render(): void")]
    [post] = symbols_of("web/http.js")
    assert (post.name, post.signature) == ("post", "const post = (url, body) =>")


def test_the_stored_json_is_the_outline() -> None:
    stored = outline_json(PACKAGE)
    assert RepoOutline.model_validate_json(stored) == build_outline(PACKAGE)
    assert outline_json(dict(reversed(PACKAGE.items()))) == stored


def test_the_file_about_the_query_ranks_first() -> None:
    text = render_map(build_outline(PACKAGE), QUERY, 10_000)
    order = outlined(text)
    assert order[0] == "app/auth/routes.py"
    assert order.index("app/auth/routes.py") < order.index("app/billing/invoice.py")
    assert order == outlined(render_map(build_outline(PACKAGE), QUERY, 10_000))
    billing = outlined(render_map(build_outline(PACKAGE), "Send each invoice by email", 10_000))
    assert billing[0] == "app/billing/invoice.py"


def test_a_file_many_others_import_comes_first_when_no_word_matches() -> None:
    # app/db.py is imported by three files, app/auth/models.py by two.
    order = outlined(render_map(build_outline(PACKAGE), "quantum entanglement", 10_000))
    assert order[:2] == ["app/db.py", "app/auth/models.py"]


def test_the_map_starts_with_its_heading_and_names_the_editor() -> None:
    text = render_map(build_outline(PACKAGE), QUERY, 10_000)
    first, second = text.splitlines()[:2]
    assert first == MAP_HEADING == "# Repository map"
    assert "`view`" in second and "str_replace_based_edit_tool" in second
    assert (
        "@router.post('/login') async def login(form: LoginForm, "
        "session: Session = Depends(get_session)) -> Token  # L12 Sign a user in"
    ) in text
    assert "\n  @property def is_admin(self) -> bool  # L15 Whether" in text  # under its class
    assert all(path.rsplit("/", 1)[-1] in text for path in PACKAGE)


def test_the_budget_is_never_exceeded_and_more_budget_shows_more() -> None:
    outline = build_outline(PACKAGE)
    shown = []
    for budget in (5, 40, 80, 150, 250, 400, 800, 3000):
        text = render_map(outline, QUERY, budget)
        assert len(text) <= budget * 4, budget
        assert text.startswith("# Repository map"[: budget * 4])
        shown.append(len(outlined(text)))
    assert shown == sorted(shown)
    assert shown[0] == 0 and shown[-1] == 14  # every file with symbols
    assert 0 < shown[4] < shown[5] < shown[-1]
    for budget in range(1, 900, 7):  # every cut-off point of the tree and the outlines
        for ratio in (4.0, 2.5):
            assert len(render_map(outline, QUERY, budget, chars_per_token=ratio)) <= budget * ratio
    wide = render_map(outline, QUERY, 150, chars_per_token=3.0)
    assert len(wide) <= 450 and len(outlined(wide)) <= len(
        outlined(render_map(outline, QUERY, 150))
    )


def test_the_tree_folds_its_folders_when_the_budget_is_tiny() -> None:
    outline = build_outline(PACKAGE)
    full = render_map(outline, QUERY, 3000)
    assert "tests/\n  test_auth.py\n" in full and "  billing/\n    __init__.py\n" in full
    tiny = render_map(outline, QUERY, 180)
    assert "## Files (20)\n" in tiny and "README.md\n" in tiny
    assert "tests/ (7 files)\n" in tiny and "test_auth.py" not in tiny
    # The folder the task is about stays open; the others fold first.
    assert "  billing/ (3 files)\n" in tiny and "  auth/\n    __init__.py\n" in tiny
    billing = render_map(outline, "Send each invoice by email", 180)
    assert "  auth/ (4 files)\n" in billing and "    invoice.py\n" in billing
    tinier = render_map(outline, QUERY, 100)
    assert "## Files (20)\napp/ (9 files)\ntests/ (7 files)\nweb/ (2 files)\nREADME.md\n" in tinier
    tinier = render_map(outline, QUERY, 60)
    assert "app/ (9 files)\ntests/ (7 files)\n… 3 more entries\n" in tinier
    assert len(tinier) <= 240


def test_the_same_outline_and_query_give_the_same_map() -> None:
    reordered = dict(sorted(PACKAGE.items(), reverse=True))
    for budget in (80, 400, 3000):
        assert render_map(build_outline(PACKAGE), QUERY, budget) == render_map(
            build_outline(reordered), QUERY, budget
        )
