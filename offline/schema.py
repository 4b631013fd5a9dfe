"""The database engineer's SQLite schema, and whether an upstream schema suits the backend."""

from __future__ import annotations

import sqlite3

from offline.blueprint import Blueprint, EntityField
from offline.job import Deliverable, Job
from offline.templates import render, template


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
    return render(
        "db/schema.sql",
        project=bp.project,
        users_tables=template("db/schema/users_tables.sql") if bp.auth else "",
        table=entity.plural,
        columns=",\n".join(f"    {column}" for column in columns),
        indexes=(
            f"\n\nCREATE INDEX IF NOT EXISTS idx_{entity.plural}_owner ON {entity.plural} (owner_id);"
            if bp.auth
            else ""
        ),
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


def database_engineer(job: Job) -> Deliverable:
    return Deliverable({"db/schema.sql": schema_sql(job.blueprint)})
