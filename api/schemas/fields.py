"""Types that refuse, at the edge, values the layers behind the API cannot hold.

PostgreSQL text cannot hold NUL, UTF-8 cannot encode a lone surrogate, JSON has no NaN or
infinity, a BIGINT ends at 2**63 - 1 and Python's datetimes at the year 9999. A request
carrying such a value gets a 422 naming the field, instead of a 500 from deep inside.

- `Text` and `ShortText` for path and query parameters;
- `Storable` on every request body, so no string, number or nesting anywhere in it
  (free-form objects such as an inline template included) escapes the check;
- `Tokens`, `Usd`, `UtcDateTime` and `INT64_MAX` for numbers and moments, which also
  document their ranges in the OpenAPI schema.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, Field, StringConstraints

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
MAX_BODY_NESTING = 32
"""Objects and arrays inside each other in a request body; an inline template needs six."""

_SURROGATE = re.compile("[\ud800-\udfff]")


def storable_text(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if _SURROGATE.search(value):
        raise ValueError("must be valid Unicode: it contains a lone surrogate")
    return value


def as_utc(moment: datetime) -> datetime:
    """The moment in UTC; one without an offset is taken as UTC already."""
    if moment.utcoffset() is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("out of range: in UTC it falls outside the years 1 to 9999") from None


def _problem(value: Any) -> str | None:
    if isinstance(value, str):
        try:
            storable_text(value)
        except ValueError as exc:
            return str(exc)
    elif isinstance(value, float) and not math.isfinite(value):
        return "must be a finite number"
    elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        return "must be an integer between -2**63 and 2**63 - 1"
    return None


def _name(key: Any) -> str:
    """A key as a step of a path in a message: short, as the message may quote several."""
    text = str(key)
    return text if len(text) <= 40 else text[:40] + "..."


def _children(value: Any) -> list[tuple[str, Any]]:
    if isinstance(value, BaseModel):
        return [(name, getattr(value, name)) for name in type(value).model_fields]
    if isinstance(value, dict):
        return [(_name(key), item) for key, item in value.items()]
    if isinstance(value, list | tuple | set | frozenset):
        return [(str(index), item) for index, item in enumerate(value)]
    return []


def check_storable(value: Any) -> None:
    """Raise ValueError naming the first unstorable value inside `value`, or one too deep.

    With an explicit stack, not recursion: the nesting is the client's to choose. A mapping's
    keys are checked before they name anything in a message, so no message carries one.
    """
    stack: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while stack:
        item, path = stack.pop()
        where = ".".join(path) or "the value"
        if len(path) > MAX_BODY_NESTING:
            raise ValueError(f"{where}: nested deeper than {MAX_BODY_NESTING} levels")
        problems = [_problem(item)]
        if isinstance(item, dict):
            problems += [f"a key {problem}" for key in item if (problem := _problem(key))]
        problem = next((found for found in problems if found), None)
        if problem is not None:
            raise ValueError(f"{where}: {problem}")
        stack.extend((child, (*path, name)) for name, child in _children(item))


Body = TypeVar("Body", bound=BaseModel)


def _storable_body(body: Body) -> Body:
    check_storable(body)
    return body


Text = Annotated[str, AfterValidator(storable_text)]
"""A string that can be stored and sent on: no NUL, no lone surrogate."""

ShortText = Annotated[str, StringConstraints(max_length=200), AfterValidator(storable_text)]
"""A name or id a query filters by (the widest such column holds 200 characters)."""

Storable = AfterValidator(_storable_body)
"""For a request body: `body: Annotated[RunCreate, Storable]`."""

Tokens = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A count of tokens: a BIGINT column holds it."""

Usd = Annotated[float, Field(ge=0, allow_inf_nan=False)]
"""An amount of money: finite, so a limit is never infinite and always serializable."""

UtcDateTime = Annotated[datetime, AfterValidator(as_utc)]
"""A moment, converted to UTC (none given: UTC), which must stay within Python's years."""
