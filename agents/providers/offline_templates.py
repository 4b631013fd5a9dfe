"""Text templates of the files the offline model writes.

Placeholders are `{{name}}` rather than `str.format` fields because the templates are
Python, JavaScript and SQL full of literal braces (dicts, blocks, JS template literals).
Multi-line values carry their own indentation. Labels (the "produced by" header line) are
added by the caller, so no template starts with one.
"""

from __future__ import annotations

import re

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")


def render(template: str, **values: str) -> str:
    """Fill every `{{name}}` of `template`.

    A placeholder without a value, or a value without a placeholder, is a bug in the
    caller; both raise instead of shipping a half-filled file.
    """
    used: set[str] = set()

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise KeyError(f"template placeholder {name!r} has no value")
        used.add(name)
        return values[name]

    text = _PLACEHOLDER.sub(substitute, template)
    unused = sorted(set(values) - used)
    if unused:
        raise KeyError(f"values without a placeholder: {', '.join(unused)}")
    return text


# --------------------------------------------------------------------------- documents

REQUIREMENTS_MD = """\
# Requirements: {{project}}

## Goal

> {{goal}}

## Scope

The product manages **{{plural_words}}**.{{auth_scope}} A {{entity_words}} has these fields:

{{field_table}}

## User stories

Each story lists its acceptance criteria.

{{stories}}

## Non-functional requirements

- Data lives in one SQLite file; running the service needs nothing but Python.
- Every endpoint validates its input and answers `422` with field-level messages when it is invalid.
- Unknown ids answer `404`; nothing answers `500` for bad client input.
- The backend ships with a pytest suite that runs against a fresh database in seconds.
{{nfr_extra}}
## Decisions recorded for later tasks

| Output | Value | Why |
|---|---|---|
| `entity` | `{{entity}}` | {{entity_reason}} |
| `needs_auth` | `{{needs_auth}}` | {{auth_reason}} |
| `needs_data_science` | `{{needs_data_science}}` | {{data_science_reason}} |

## Out of scope

- Payments, e-mail delivery, file uploads and third-party integrations.
- Multi-tenant administration and role-based permissions beyond record ownership.
- Deployment infrastructure; the service runs locally with `uvicorn`.
"""

CRUD_STORIES_MD = """\
### US-1 Create a {{entity_words}}

As a {{actor}}, I want to create a {{entity_words}} so that I can keep track of it.

- Given a valid `{{primary}}`, the {{entity_words}} is stored and returned with a new `id` (201).
- An empty or missing `{{primary}}`, or a field of the wrong type, is rejected with 422.
- Optional fields take their documented defaults when omitted.

### US-2 List {{plural_words}}

As a {{actor}}, I want to see all my {{plural_words}} in one list.

- `GET /{{route}}` returns every {{entity_words}} I can access, oldest first (200).
- An empty collection returns `[]`, not an error.

### US-3 View a {{entity_words}}

As a {{actor}}, I want to open one {{entity_words}} to see all its fields.

- `GET /{{route}}/{id}` returns the {{entity_words}} (200); an unknown id returns 404.

### US-4 Update a {{entity_words}}

As a {{actor}}, I want to change a {{entity_words}} when things change.

- `PUT /{{route}}/{id}` replaces every field and returns the new state (200).
- An unknown id returns 404; invalid fields return 422 and change nothing.

### US-5 Delete a {{entity_words}}

As a {{actor}}, I want to delete a {{entity_words}} I no longer need.

- `DELETE /{{route}}/{id}` removes it (204); reading it afterwards returns 404.
- Deleting an unknown id returns 404.
"""

AUTH_STORIES_MD = """\
### US-6 Register

As a visitor, I want to create an account with a username and a password.

- Usernames are 3-50 characters and unique (case-insensitive); a taken one answers 409.
- Passwords have at least 8 characters and are stored only as salted hashes.

### US-7 Log in

As a visitor, I want to log in to get access to my {{plural_words}}.

- Correct credentials return a bearer token that expires after 12 hours.
- Wrong credentials answer 401 without saying which part was wrong.

### US-8 Keep my {{plural_words}} private

As a signed-in user, I want my {{plural_words}} to be visible only to me.

- Every `/{{route}}` endpoint answers 401 without a valid bearer token.
- Another user's {{entity_words}} answers 404 on read, update and delete.
"""

METRICS_STORY_MD = """\
### US-{{number}} See metrics

As a {{actor}}, I want summary metrics over my {{plural_words}}.

- Count, share of yes/no fields, min/mean/max of numeric fields and date coverage are available.
- Metrics are computed from the same records the API returns.
"""

PLAN_MD = """\
# Delivery plan: {{project}}

Goal: {{goal}}

## Milestones

{{milestones}}

## Task breakdown

| # | Task | Role | Depends on | Deliverable |
|---|---|---|---|---|
{{task_rows}}

## Working agreements

- Every deliverable is a file in the repository; decisions later tasks branch on are recorded
  as task outputs (`needs_auth`, `needs_data_science`, `cleanup`).
- The API contract in `docs/architecture.md` is the single source of truth for the backend
  and the frontend; changes go through the tech lead.
- A task is done when its files are written and, for code, its tests pass.
- Reviews block the release only on high-severity findings; the rest become follow-ups.

## Risks

| Risk | Mitigation |
|---|---|
| Entity or fields misread from the goal | Requirements list the assumed fields; reviewers check them against the goal. |
| Frontend and backend drift apart | Both follow the endpoint table in `docs/architecture.md`. |
{{risk_rows}}
"""

DESIGN_MD = """\
# UX design: {{project}}

## Principles

- One page, no build step: the frontend is a static `index.html` plus `app.js`.
- The list is the home screen; creating a {{entity_words}} never leaves it.
- Every action answers in a status line (`role="status"`), errors in plain words.
- Keyboard first: every control is a native form element with a visible label.

## Screens

{{screens}}

## Flows

{{flows}}

## Wireframe

```text
{{wireframe}}
```

## Fields and controls

| Field | Control | Rules |
|---|---|---|
{{control_rows}}

## Accessibility

- Labels wrap their inputs, so screen readers announce every field.
- Colour is never the only signal: errors are prefixed with "Error:".
- Record text is inserted with `textContent`, never as HTML.
"""

ARCHITECTURE_MD = """\
# Architecture: {{project}}

## Components

| Component | Path | Technology | Responsibility |
|---|---|---|---|
| Backend API | `backend/app.py` | FastAPI, pydantic, stdlib `sqlite3` | {{backend_responsibility}} |
| Database | `db/schema.sql` | SQLite | Tables {{tables}}; the backend embeds the same DDL. |
| Frontend | `frontend/` | Static HTML + vanilla JS (`fetch`) | Lists, creates and deletes {{plural_words}}. |
| Tests | `backend/tests/` | pytest + FastAPI `TestClient` | Every endpoint, on a fresh database per test. |
{{extra_components}}
## API contract

Base URL: `http://127.0.0.1:8000`. Bodies are JSON. {{auth_contract}}

| Method | Path | Auth | Request body | Success | Errors |
|---|---|---|---|---|---|
{{endpoint_rows}}

`{{class_name}}` (request and response; responses add `id`):

{{field_table}}

## Decisions

{{decisions}}

## Running

```bash
cd backend
python -m pip install -r requirements.txt
uvicorn app:app --reload      # API on http://127.0.0.1:8000, docs on /docs
python -m pytest -q           # tests
```
"""

METRICS_MD = """\
# Analytics: {{project}}

`analytics/metrics.py` computes summary statistics over {{plural_words}} as the API returns
them (`GET /{{route}}`). It is pure Python (standard library only), so it runs in a notebook,
a cron job or a future `/stats` endpoint alike.

## Metrics

| Metric | Definition |
|---|---|
| `count` | Number of {{plural_words}}. |
{{metric_rows}}

## Usage

```python
from metrics import summarize

records = requests.get("http://127.0.0.1:8000/{{route}}", headers=headers).json()
print(summarize(records))
```

Check the examples in the docstrings with `python -m doctest analytics/metrics.py -v`.

## Next steps

- Track the metrics over time (daily snapshot table) to see trends, not just levels.
- Once there are a few hundred records, add a forecast of `count` per week
  (a seasonal-naive baseline first, then anything fancier must beat it).
"""

CODE_REVIEW_MD = """\
# Code review

Scope: the backend and frontend files delivered upstream of this review.

## Files reviewed

{{file_list}}

Tests found: **{{test_count}}** test function(s) in {{test_files}} file(s).

## Strengths

{{strengths}}

## Findings

{{findings}}

## Verdict

**{{verdict}}** ({{verdict_reason}})
"""

SECURITY_REVIEW_MD = """\
# Security review

Scope: {{scope}}. The checks below are run against the delivered source text.

## Checks

| Check | Result | Evidence |
|---|---|---|
{{check_rows}}

## Findings

{{findings}}

## Verdict

**{{verdict}}**: {{high}} high, {{medium}} medium, {{low}} low severity finding(s).
"""

README_MD = """\
# {{project}}

Delivered by a multi-agent pipeline for the goal:

> {{goal}}

## Repository layout

| Path | What it is |
|---|---|
{{layout_rows}}

## Run the backend

```bash
cd backend
python -m venv .venv && . .venv/bin/activate
python -m pip install -r requirements.txt
uvicorn app:app --reload            # http://127.0.0.1:8000, OpenAPI docs on /docs
```

## Run the tests

```bash
cd backend && python -m pytest -q   # or, from the repository root: python -m pytest -q backend
```

## Open the frontend

```bash
python -m http.server 5500 --directory frontend   # then open http://127.0.0.1:5500
```

The API base URL is editable at the top of the page (default `http://127.0.0.1:8000`).

## Who produced what

Every file was written by one agent of the delivery pipeline; its first line says which.

| File | Agent | Model |
|---|---|---|
{{provenance_rows}}

{{provenance_note}}
"""

BACKEND_README_MD = """\
# Backend: {{project}}

A FastAPI service for {{plural_words}} on SQLite (standard library `sqlite3`, no ORM).

## Run

```bash
python -m pip install -r requirements.txt
uvicorn app:app --reload
```

| Variable | Default | Meaning |
|---|---|---|
| `APP_DB_PATH` | `app.db` | SQLite file; created on first request. |
| `CORS_ORIGINS` | `http://localhost:5500,http://127.0.0.1:5500` | Origins allowed to call the API from a browser. |

## Endpoints

| Method | Path | Auth |
|---|---|---|
{{endpoint_rows}}

Interactive documentation: http://127.0.0.1:8000/docs

## Test

```bash
python -m pytest -q
```

Each test builds the app with `create_app(tmp_path / "test.db")`, so tests never share data.
{{auth_note}}"""

GENERIC_NOTES_MD = """\
# {{role_title}} notes: {{project}}

Goal: {{goal}}

The offline model has no dedicated template for the `{{role}}` role, so these notes record
what it understood of the goal for a human to pick up.

- Main entity: `{{entity}}` ({{field_names}})
- Needs authentication: {{needs_auth}}
- Needs data science: {{needs_data_science}}

## Upstream files

{{upstream}}
"""

GITIGNORE = """\
# Python
__pycache__/
*.py[cod]
.venv/
venv/
.pytest_cache/
.mypy_cache/
.ruff_cache/
*.egg-info/

# Local data and secrets
*.db
*.sqlite3
.env

# Editors and OS
.idea/
.vscode/
.DS_Store

# Frontend tooling, if any is added later
node_modules/
"""

REQUIREMENTS_TXT = """\
fastapi>=0.110
uvicorn>=0.29
httpx>=0.27
pytest>=8.0
"""

# --------------------------------------------------------------------------- database

SCHEMA_SQL = """\
-- {{project}}: SQLite schema.
-- Conventions: UTC ISO-8601 text timestamps, booleans as 0/1 integers, and IF NOT EXISTS
-- everywhere so the script is safe to run on every start.
PRAGMA foreign_keys = ON;
{{tables}}"""

USERS_TABLES_SQL = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE COLLATE NOCASE,
    password_hash TEXT NOT NULL,
    created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%SZ', 'now'))
);

-- Bearer tokens are stored as SHA-256 digests: a leaked database holds no usable token.
CREATE TABLE IF NOT EXISTS sessions (
    token_hash TEXT PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    expires_at TEXT NOT NULL
);

CREATE INDEX IF NOT EXISTS idx_sessions_user ON sessions (user_id);
"""

ENTITY_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS {{table}} (
{{columns}}
);
{{indexes}}"""

# --------------------------------------------------------------------------- backend

APP_PY = '''\
"""{{project}}: create, list, read, update and delete {{plural_words}} stored in SQLite.{{auth_doc}}

Run it from this folder with `uvicorn app:app --reload`; the OpenAPI docs are then served
on http://127.0.0.1:8000/docs. APP_DB_PATH chooses the database file (default: app.db).
"""

from __future__ import annotations

{{imports}}

DEFAULT_DB_PATH = Path(os.environ.get("APP_DB_PATH", "app.db"))
# The static frontend is served from its own origin, e.g. `python -m http.server 5500`.
LOCAL_ORIGINS = "http://localhost:5500,http://127.0.0.1:5500"
CORS_ORIGINS = os.environ.get("CORS_ORIGINS", LOCAL_ORIGINS).split(",")
{{auth_constants}}
# Same DDL as db/schema.sql. IF NOT EXISTS makes it safe to run on every connection, which
# spares the app start-up hooks and import-time side effects.
SCHEMA = """
{{schema}}
"""

# Every statement is static and parameterised: client input only ever travels as a bound value.
{{sql_constants}}


class {{class_name}}In(BaseModel):
    """What a client sends to create or replace a {{entity_words}}."""

{{model_fields}}


class {{class_name}}({{class_name}}In):
    id: int
{{auth_models}}

def connect(db_path: Path) -> sqlite3.Connection:
    # FastAPI may run a dependency and its endpoint on different worker threads.
    conn = sqlite3.connect(db_path, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    conn.executescript(SCHEMA)
    return conn


def get_db(request: Request) -> Iterator[sqlite3.Connection]:
    conn = connect(request.app.state.db_path)
    try:
        yield conn
    finally:
        conn.close()


Db = Annotated[sqlite3.Connection, Depends(get_db)]
{{scope_section}}

Scope = Annotated[dict[str, Any], Depends(record_scope)]
router = APIRouter(tags=["{{plural}}"])


def not_found(record_id: int) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"{{entity_words}} {record_id} not found")


def load(conn: sqlite3.Connection, record_id: int, scope: dict[str, Any]) -> {{class_name}}:
    row = conn.execute(GET_SQL, {**scope, "id": record_id}).fetchone()
    if row is None:
        raise not_found(record_id)
    return {{class_name}}.model_validate(dict(row))


@router.post("/{{route}}", status_code=status.HTTP_201_CREATED)
def create_{{entity}}(payload: {{class_name}}In, conn: Db, scope: Scope) -> {{class_name}}:
    with conn:
        cursor = conn.execute(INSERT_SQL, {**payload.model_dump(mode="json"), **scope})
    return load(conn, int(cursor.lastrowid or 0), scope)


@router.get("/{{route}}")
def list_{{plural}}(conn: Db, scope: Scope) -> list[{{class_name}}]:
    return [{{class_name}}.model_validate(dict(row)) for row in conn.execute(LIST_SQL, scope)]


@router.get("/{{route}}/{record_id}")
def get_{{entity}}(record_id: int, conn: Db, scope: Scope) -> {{class_name}}:
    return load(conn, record_id, scope)


@router.put("/{{route}}/{record_id}")
def update_{{entity}}(
    record_id: int, payload: {{class_name}}In, conn: Db, scope: Scope
) -> {{class_name}}:
    values = {**payload.model_dump(mode="json"), **scope, "id": record_id}
    with conn:
        cursor = conn.execute(UPDATE_SQL, values)
    if cursor.rowcount == 0:
        raise not_found(record_id)
    return load(conn, record_id, scope)


@router.delete("/{{route}}/{record_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_{{entity}}(record_id: int, conn: Db, scope: Scope) -> Response:
    with conn:
        cursor = conn.execute(DELETE_SQL, {**scope, "id": record_id})
    if cursor.rowcount == 0:
        raise not_found(record_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def create_app({{factory_params}}) -> FastAPI:
    """Build the service around one SQLite file; tests pass a temporary one."""
    app = FastAPI(title="{{project}}", version="0.1.0")
    app.state.db_path = Path(db_path)
{{factory_body}}
    app.add_middleware(
        CORSMiddleware,
        allow_origins=CORS_ORIGINS,
        allow_methods=["GET", "POST", "PUT", "DELETE"],
        allow_headers=["Authorization", "Content-Type"],
    )
    app.include_router(router)
    return app


app = create_app()
'''

APP_AUTH_CONSTANTS = """
# OWASP's 2023 figure for PBKDF2-HMAC-SHA256; the tests lower it through create_app.
PBKDF2_ITERATIONS = 600_000
TOKEN_TTL = timedelta(hours=12)

INSERT_USER_SQL = "INSERT INTO users (username, password_hash) VALUES (:username, :password_hash)"
USER_BY_NAME_SQL = "SELECT id, password_hash FROM users WHERE username = :username"
INSERT_SESSION_SQL = (
    "INSERT INTO sessions (token_hash, user_id, expires_at)"
    " VALUES (:token_hash, :user_id, :expires_at)"
)
SESSION_USER_SQL = (
    "SELECT user_id FROM sessions"
    " WHERE token_hash = :token_hash AND expires_at > :now"
)
"""

APP_AUTH_MODELS = """

class RegisterIn(BaseModel):
    username: str = Field(min_length=3, max_length=50, pattern=r"^[A-Za-z0-9_.-]+$")
    password: str = Field(min_length=8, max_length=128)


class LoginIn(BaseModel):
    # No length rules here: a wrong password must answer 401, not 422.
    username: str
    password: str


class UserOut(BaseModel):
    id: int
    username: str


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_at: datetime
"""

APP_AUTH_SCOPE = '''
bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def unauthorized(detail: str = "missing, invalid or expired bearer token") -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


def hash_password(password: str, iterations: int) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def verify_password(password: str, stored: str) -> bool:
    try:
        algorithm, iterations, salt, expected = stored.split("$")
        salt_bytes, rounds = bytes.fromhex(salt), int(iterations)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt_bytes, rounds)
    except ValueError:
        return False
    return algorithm == "pbkdf2_sha256" and hmac.compare_digest(digest.hex(), expected)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def record_scope(conn: Db, credentials: Credentials) -> dict[str, Any]:
    """The caller's user id: every record query is filtered by it, so users see only their own."""
    if credentials is None:
        raise unauthorized()
    now = datetime.now(timezone.utc).isoformat()
    row = conn.execute(
        SESSION_USER_SQL, {"token_hash": token_digest(credentials.credentials), "now": now}
    ).fetchone()
    if row is None:
        raise unauthorized()
    return {"owner_id": row["user_id"]}


auth_router = APIRouter(prefix="/auth", tags=["auth"])


@auth_router.post("/register", status_code=status.HTTP_201_CREATED)
def register(body: RegisterIn, conn: Db, request: Request) -> UserOut:
    password_hash = hash_password(body.password, request.app.state.password_iterations)
    try:
        with conn:
            cursor = conn.execute(
                INSERT_USER_SQL, {"username": body.username, "password_hash": password_hash}
            )
    except sqlite3.IntegrityError:
        raise HTTPException(status.HTTP_409_CONFLICT, "username already taken") from None
    return UserOut(id=int(cursor.lastrowid or 0), username=body.username)


@auth_router.post("/login")
def login(body: LoginIn, conn: Db) -> TokenOut:
    user = conn.execute(USER_BY_NAME_SQL, {"username": body.username}).fetchone()
    if user is None or not verify_password(body.password, user["password_hash"]):
        raise unauthorized("invalid username or password")
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(timezone.utc) + TOKEN_TTL
    with conn:
        conn.execute(
            INSERT_SESSION_SQL,
            {
                "token_hash": token_digest(token),
                "user_id": user["id"],
                "expires_at": expires_at.isoformat(),
            },
        )
    return TokenOut(access_token=token, expires_at=expires_at)
'''

APP_OPEN_SCOPE = '''

def record_scope() -> dict[str, Any]:
    """No user accounts here (the goal asked for none): every caller sees every record."""
    return {}
'''

TESTS_PY = '''\
"""Tests for the {{project}} backend.

Each test builds the app on its own SQLite file, so tests share no data and run in any order.
"""

from __future__ import annotations

{{imports}}

ROUTE = "/{{route}}"
PAYLOAD = {{payload}}
UPDATED = {{updated}}
INVALID_PAYLOADS = [
{{invalid_payloads}}
]
{{helpers}}

@pytest.fixture
def client(tmp_path: Path) -> TestClient:
{{client_body}}


@pytest.fixture
def headers(client: TestClient) -> dict[str, str]:
{{headers_body}}


def create(
    client: TestClient, headers: dict[str, str], payload: dict[str, Any] = PAYLOAD
) -> dict[str, Any]:
    response = client.post(ROUTE, json=payload, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_create_returns_the_stored_record(client: TestClient, headers: dict[str, str]) -> None:
    body = create(client, headers)
    assert isinstance(body["id"], int)
    assert {key: body[key] for key in PAYLOAD} == PAYLOAD


def test_list_returns_records_in_order(client: TestClient, headers: dict[str, str]) -> None:
    first = create(client, headers)
    second = create(client, headers, UPDATED)
    response = client.get(ROUTE, headers=headers)
    assert response.status_code == 200
    assert response.json() == [first, second]


def test_get_returns_one_record(client: TestClient, headers: dict[str, str]) -> None:
    created = create(client, headers)
    response = client.get(f"{ROUTE}/{created['id']}", headers=headers)
    assert response.status_code == 200
    assert response.json() == created


def test_update_replaces_the_record(client: TestClient, headers: dict[str, str]) -> None:
    created = create(client, headers)
    url = f"{ROUTE}/{created['id']}"
    response = client.put(url, json=UPDATED, headers=headers)
    assert response.status_code == 200
    assert response.json() == {**UPDATED, "id": created["id"]}
    assert client.get(url, headers=headers).json() == response.json()


def test_delete_removes_the_record(client: TestClient, headers: dict[str, str]) -> None:
    created = create(client, headers)
    url = f"{ROUTE}/{created['id']}"
    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(url, headers=headers).status_code == 404
    assert client.get(ROUTE, headers=headers).json() == []


def test_unknown_id_is_404(client: TestClient, headers: dict[str, str]) -> None:
    url = f"{ROUTE}/9999"
    assert client.get(url, headers=headers).status_code == 404
    assert client.put(url, json=PAYLOAD, headers=headers).status_code == 404
    assert client.delete(url, headers=headers).status_code == 404


@pytest.mark.parametrize("payload", INVALID_PAYLOADS)
def test_invalid_payload_is_422(
    client: TestClient, headers: dict[str, str], payload: dict[str, Any]
) -> None:
    response = client.post(ROUTE, json=payload, headers=headers)
    assert response.status_code == 422
    assert client.get(ROUTE, headers=headers).json() == []
'''

TESTS_AUTH_HELPERS = '''
PASSWORD = "correct horse battery"


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> dict[str, str]:
    """Register and log in; the headers that authenticate as that user."""
    registered = client.post("/auth/register", json={"username": username, "password": password})
    assert registered.status_code == 201, registered.text
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}
'''

TESTS_AUTH_CASES = """

def test_register_rejects_a_taken_username(client: TestClient) -> None:
    sign_in(client, "alice")
    body = {"username": "alice", "password": "another password"}
    response = client.post("/auth/register", json=body)
    assert response.status_code == 409


def test_register_rejects_a_short_password(client: TestClient) -> None:
    response = client.post("/auth/register", json={"username": "carol", "password": "short"})
    assert response.status_code == 422


def test_login_with_a_wrong_password_is_401(client: TestClient) -> None:
    sign_in(client, "alice")
    response = client.post("/auth/login", json={"username": "alice", "password": "wrong password"})
    assert response.status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-a-real-token"}])
def test_requests_without_a_valid_token_are_401(
    client: TestClient, headers: dict[str, str]
) -> None:
    url = f"{ROUTE}/1"
    assert client.get(ROUTE, headers=headers).status_code == 401
    assert client.post(ROUTE, json=PAYLOAD, headers=headers).status_code == 401
    assert client.get(url, headers=headers).status_code == 401
    assert client.put(url, json=PAYLOAD, headers=headers).status_code == 401
    assert client.delete(url, headers=headers).status_code == 401


def test_users_only_see_their_own_records(client: TestClient, headers: dict[str, str]) -> None:
    created = create(client, headers)
    bob = sign_in(client, "bob")
    url = f"{ROUTE}/{created['id']}"
    assert client.get(ROUTE, headers=bob).json() == []
    assert client.get(url, headers=bob).status_code == 404
    assert client.put(url, json=UPDATED, headers=bob).status_code == 404
    assert client.delete(url, headers=bob).status_code == 404
    assert client.get(url, headers=headers).json() == created


def test_passwords_are_stored_as_salted_hashes(client: TestClient, tmp_path: Path) -> None:
    sign_in(client, "alice")
    sign_in(client, "bob")
    with closing(sqlite3.connect(tmp_path / "test.db")) as conn:
        hashes = [row[0] for row in conn.execute("SELECT password_hash FROM users")]
    assert len(hashes) == 2
    assert all(stored.startswith("pbkdf2_sha256$") for stored in hashes)
    assert all(PASSWORD not in stored for stored in hashes)
    assert hashes[0] != hashes[1]  # same password, different salt
"""

CONFTEST_PY = '''\
"""Put backend/ on sys.path so `import app` works from backend/ and from the repository root."""

import sys
from pathlib import Path

BACKEND_DIR = str(Path(__file__).resolve().parents[1])
if BACKEND_DIR not in sys.path:
    sys.path.insert(0, BACKEND_DIR)
'''

# --------------------------------------------------------------------------- frontend

INDEX_HTML = """\
<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{{project}}</title>
  <style>
    body { font-family: system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
    header { display: flex; justify-content: space-between; align-items: baseline; gap: 1rem; }
    form { display: flex; flex-wrap: wrap; gap: .75rem; align-items: end; margin: 1rem 0; }
    label { display: flex; flex-direction: column; font-size: .9rem; gap: .25rem; }
    label.check { flex-direction: row; align-items: center; }
    ul { list-style: none; padding: 0; }
    li { display: flex; gap: 1rem; align-items: center; padding: .5rem 0; border-bottom: 1px solid #ddd; }
    li span { flex: 1; color: #555; }
    #status.error { color: #b00020; }
  </style>
</head>
<body>
  <header>
    <h1>{{project}}</h1>
    <label>API base URL <input id="api-base" type="url" placeholder="http://127.0.0.1:8000"></label>
  </header>
{{auth_panel}}
  <main id="records-panel">
    <h2>{{plural_title}}</h2>
    <form id="create-form">
{{form_fields}}
      <button type="submit">Add {{entity_words}}</button>
    </form>
    <ul id="records" aria-label="{{plural_words}}"></ul>
  </main>

  <p id="status" role="status" aria-live="polite"></p>
  <script src="app.js"></script>
</body>
</html>
"""

INDEX_AUTH_PANEL = """
  <section id="auth-panel">
    <h2>Sign in</h2>
    <form id="auth-form">
      <label>Username <input name="username" autocomplete="username" required minlength="3"></label>
      <label>Password
        <input name="password" type="password" autocomplete="current-password" required minlength="8">
      </label>
      <button type="submit" value="login">Log in</button>
      <button type="submit" value="register">Register</button>
    </form>
  </section>
  <p id="session" hidden>Signed in. <button type="button" id="sign-out">Sign out</button></p>
"""

APP_JS = """\
// {{project}} frontend: talks to the backend API with fetch; no build step, no dependencies.
"use strict";

const DEFAULT_API_BASE = "http://127.0.0.1:8000";
const ROUTE = "/{{route}}";
const AUTH_REQUIRED = {{auth_required}};
// One entry per {{entity_words}} field: drives reading the form and rendering the list.
const FIELDS = {{fields_json}};

const state = {
  apiBase: localStorage.getItem("apiBase") || DEFAULT_API_BASE,
  // sessionStorage, not localStorage: the token dies with the tab instead of lingering on disk.
  token: sessionStorage.getItem("token"),
};

const byId = (id) => document.getElementById(id);

function showStatus(message, isError = false) {
  const status = byId("status");
  status.textContent = isError ? `Error: ${message}` : message;
  status.classList.toggle("error", isError);
}

async function describeError(response) {
  try {
    const data = await response.json();
    if (typeof data.detail === "string") return data.detail;
    if (Array.isArray(data.detail)) {
      return data.detail.map((d) => `${d.loc.slice(1).join(".")}: ${d.msg}`).join("; ");
    }
  } catch {
    // Not JSON: fall back to the status line.
  }
  return `${response.status} ${response.statusText}`;
}

async function api(path, { method = "GET", body } = {}) {
  const headers = {};
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (state.token) headers.Authorization = `Bearer ${state.token}`;
  const response = await fetch(state.apiBase.replace(/\\/+$/, "") + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (response.status === 401 && AUTH_REQUIRED && state.token) setToken(null);
  if (!response.ok) throw new Error(await describeError(response));
  return response.status === 204 ? null : response.json();
}

function readForm(form) {
  const payload = {};
  for (const field of FIELDS) {
    const input = form.elements[field.name];
    if (field.kind === "bool") payload[field.name] = input.checked;
    else if (field.kind === "int") payload[field.name] = input.value === "" ? 0 : Number.parseInt(input.value, 10);
    else if (field.kind === "float") payload[field.name] = input.value === "" ? 0 : Number.parseFloat(input.value);
    else if (field.kind === "date") payload[field.name] = input.value || null;
    else payload[field.name] = input.value.trim();
  }
  return payload;
}

function formatValue(field, value) {
  if (field.kind === "bool") return value ? "yes" : "no";
  return value === null || value === "" ? "-" : String(value);
}

function render(records) {
  const list = byId("records");
  list.replaceChildren();
  if (records.length === 0) {
    const empty = document.createElement("li");
    empty.textContent = "No {{plural_words}} yet.";
    list.append(empty);
    return;
  }
  for (const record of records) {
    // textContent only: record values are user input and must never be parsed as HTML.
    const item = document.createElement("li");
    const title = document.createElement("strong");
    title.textContent = record[FIELDS[0].name];
    const details = document.createElement("span");
    details.textContent = FIELDS.slice(1)
      .map((field) => `${field.label}: ${formatValue(field, record[field.name])}`)
      .join(" | ");
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.addEventListener("click", () => removeRecord(record.id));
    item.append(title, details, remove);
    list.append(item);
  }
}

async function refresh() {
  if (AUTH_REQUIRED && !state.token) return render([]);
  try {
    render(await api(ROUTE));
  } catch (error) {
    showStatus(error.message, true);
  }
}

async function createRecord(event) {
  event.preventDefault();
  const form = event.currentTarget;
  try {
    await api(ROUTE, { method: "POST", body: readForm(form) });
    form.reset();
    showStatus("{{entity_title}} added.");
    await refresh();
  } catch (error) {
    showStatus(error.message, true);
  }
}

async function removeRecord(id) {
  try {
    await api(`${ROUTE}/${id}`, { method: "DELETE" });
    showStatus("{{entity_title}} deleted.");
    await refresh();
  } catch (error) {
    showStatus(error.message, true);
  }
}

function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem("token", token);
  else sessionStorage.removeItem("token");
  updateAuthView();
}

function updateAuthView() {
  if (!AUTH_REQUIRED) return;
  const signedIn = Boolean(state.token);
  byId("auth-panel").hidden = signedIn;
  byId("session").hidden = !signedIn;
  byId("records-panel").hidden = !signedIn;
}

async function authenticate(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const action = event.submitter ? event.submitter.value : "login";
  const credentials = { username: form.elements.username.value.trim(), password: form.elements.password.value };
  try {
    if (action === "register") await api("/auth/register", { method: "POST", body: credentials });
    const { access_token: token } = await api("/auth/login", { method: "POST", body: credentials });
    form.reset();
    setToken(token);
    showStatus(`Signed in as ${credentials.username}.`);
    await refresh();
  } catch (error) {
    showStatus(error.message, true);
  }
}

function init() {
  const baseInput = byId("api-base");
  baseInput.value = state.apiBase;
  baseInput.addEventListener("change", () => {
    state.apiBase = baseInput.value.trim() || DEFAULT_API_BASE;
    localStorage.setItem("apiBase", state.apiBase);
    refresh();
  });
  byId("create-form").addEventListener("submit", createRecord);
  if (AUTH_REQUIRED) {
    byId("auth-form").addEventListener("submit", authenticate);
    byId("sign-out").addEventListener("click", () => {
      setToken(null);
      render([]);
      showStatus("Signed out.");
    });
  }
  updateAuthView();
  refresh();
}

document.addEventListener("DOMContentLoaded", init);
"""

# --------------------------------------------------------------------------- analytics

METRICS_PY = '''\
"""Summary statistics over {{plural_words}}, as plain dicts (the JSON the API returns).

Pure standard library, so it runs anywhere the records can be loaded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from statistics import fmean
from typing import Any

BOOLEAN_FIELDS: tuple[str, ...] = {{boolean_fields}}
NUMERIC_FIELDS: tuple[str, ...] = {{numeric_fields}}
CATEGORY_FIELDS: tuple[str, ...] = {{category_fields}}
DATE_FIELDS: tuple[str, ...] = {{date_fields}}

SAMPLE = {{sample}}


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Count, share of true flags, numeric min/mean/max, category counts and date coverage.

    >>> summarize([])["count"]
    0
    >>> summary = summarize(SAMPLE)
    >>> summary["count"]
    2{{doctest_lines}}
    """
    rows = list(records)
    summary: dict[str, Any] = {"count": len(rows)}
    for field in BOOLEAN_FIELDS:
        flags = [bool(row.get(field)) for row in rows]
        summary[f"{field}_rate"] = round(sum(flags) / len(flags), 3) if flags else None
    for field in NUMERIC_FIELDS:
        values = [float(row[field]) for row in rows if row.get(field) is not None]
        summary[field] = (
            {"min": min(values), "mean": round(fmean(values), 3), "max": max(values)}
            if values
            else None
        )
    for field in CATEGORY_FIELDS:
        counts = Counter(str(row.get(field) or "") for row in rows)
        summary[f"{field}_counts"] = dict(counts.most_common())
    for field in DATE_FIELDS:
        dates = sorted(str(row[field]) for row in rows if row.get(field))
        summary[field] = (
            {"with_value": len(dates), "first": dates[0], "last": dates[-1]} if dates else None
        )
    return summary


if __name__ == "__main__":
    print(summarize(SAMPLE))
'''
