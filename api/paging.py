"""Paged listings: one page of rows, whether more follow, and how to ask for them.

A listing asks its query for one row more than the page shows: that row's presence is
how it knows another page follows, without counting.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar
from urllib.parse import urlencode

from fastapi import Request

from api.errors import unprocessable
from api.schemas.fields import as_utc, storable_text

Row = TypeVar("Row")


def first_page(rows: Sequence[Row], limit: int) -> tuple[list[Row], bool]:
    """The rows the page shows and whether more follow, from `limit + 1` rows fetched."""
    return list(rows[:limit]), len(rows) > limit


def next_link(request: Request, name: str, value: str) -> str:
    """This request's path and query, with the query parameter `name` set to `value`."""
    params = {k: v for k, v in request.query_params.items() if k != name}
    return f"{request.url.path}?{urlencode({**params, name: value})}"


def encode_cursor(created_at: datetime, row_id: str) -> str:
    """Where a listing ordered by (creation, id) stopped, as an opaque query value."""
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """The (creation, id) the `cursor` query parameter holds; 422 when it holds none."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return as_utc(datetime.fromisoformat(created)), storable_text(str(row_id))
    except (binascii.Error, ValueError, TypeError):
        raise unprocessable(
            ("query", "cursor"),
            "invalid cursor: pass `next_cursor` from the previous page as it is",
        ) from None
