"""The backend engineer's FastAPI service on SQLite, with its pytest suite, requirements and
README."""

from __future__ import annotations

import json

from offline.blueprint import Blueprint, EntityField, endpoints, sample_record
from offline.fragments import md_table_rows, py_literal
from offline.job import Deliverable, Job
from offline.labels import strip_label
from offline.schema import schema_fits, schema_sql
from offline.templates import fill, render, template


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
    return render(
        "backend/app.py",
        project=bp.project,
        plural_words=e.plural_words,
        auth_doc=(
            "\n\nUsers register and log in (POST /auth/register, /auth/login), then send the token\n"
            f"as `Authorization: Bearer <token>`; each user only ever sees their own {e.plural_words}."
            if bp.auth
            else ""
        ),
        imports=_app_imports(bp),
        auth_constants=template("backend/app/auth_constants.py") if bp.auth else "",
        schema=schema.strip(),
        sql_constants=_sql_constants(bp),
        class_name=e.class_name,
        entity_words=e.words,
        model_fields="\n".join(_model_field(f) for f in e.fields),
        auth_models=template("backend/app/auth_models.py") if bp.auth else "",
        scope_section=template("backend/app/auth_scope.py")
        if bp.auth
        else template("backend/app/open_scope.py"),
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
                f"    {{**PAYLOAD, {json.dumps(f.name)}: {py_literal(f.invalid_value)}}},  # not a {f.kind}"
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
    auth_cases = template("backend/tests/test_app/auth_cases.py") if bp.auth else ""
    return fill(
        template("backend/tests/test_app.py") + auth_cases,
        project=bp.project,
        imports="\n".join(imports),
        route=e.route,
        payload=py_literal(sample_record(e, 0)),
        updated=py_literal(sample_record(e, 1)),
        invalid_payloads="\n".join(invalid),
        helpers=template("backend/tests/test_app/auth_helpers.py") if bp.auth else "",
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
    readme = render(
        "backend/README.md",
        project=bp.project,
        plural_words=bp.entity.plural_words,
        endpoint_rows=md_table_rows(
            (ep.method, f"`{ep.path}`", "bearer token" if ep.auth else "-") for ep in endpoints(bp)
        ),
        auth_note=auth_note,
        schema_source=(
            "the one from `db/schema.sql`"
            if reuse
            else "generated here (no usable `db/schema.sql` was delivered)"
        ),
    )
    return Deliverable(
        {
            "backend/app.py": backend_app(bp, schema),
            "backend/tests/conftest.py": template("backend/tests/conftest.py"),
            "backend/tests/test_app.py": backend_tests(bp),
            "backend/requirements.txt": template("backend/requirements.txt"),
            "backend/README.md": readme,
        }
    )
