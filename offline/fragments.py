"""Pieces of Markdown and Python source that several deliverables share."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from offline.blueprint import Entity


def md_table_rows(rows: Iterable[Iterable[str]]) -> str:
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def bullets(items: Iterable[str]) -> str:
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
    return header + md_table_rows(rows)


def py_literal(value: Any, indent: str = "") -> str:
    """Python source for JSON-like data, one dict key per line (readable generated code)."""
    if isinstance(value, dict):
        inner = indent + "    "
        items = "".join(
            f"{inner}{py_literal(k)}: {py_literal(v, inner)},\n" for k, v in value.items()
        )
        return "{\n" + items + indent + "}"
    if isinstance(value, list):
        inner = indent + "    "
        items = "".join(f"{inner}{py_literal(v, inner)},\n" for v in value)
        return "[\n" + items + indent + "]"
    if isinstance(value, str):
        return json.dumps(value)  # double-quoted; valid Python for the ASCII we generate
    return repr(value)


def py_tuple(names: Iterable[str]) -> str:
    items = [json.dumps(name) for name in names]
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"
