"""Schemathesis hooks for tests/api/test_api_schema.py (loaded through SCHEMATHESIS_HOOKS).

Generated requests follow the schema or break it at random; the values that once made the
API answer 500 (NUL, lone surrogates, moments outside Python's years, integers past 32 and
64 bits, NaN and infinity) are too specific to come up by chance, so half the generated
requests get one of them put in place of one of their values. Every answer must then be
a success or a JSON client error.
"""

from __future__ import annotations

import json
import re
from typing import Any

import schemathesis
from hypothesis import strategies as st

TEXT_ANYWHERE = ["\x00", "id\x00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"]
TEXT_IN_BODIES = ["\ud800", "ok\udfff"]
"""A URL cannot carry a lone surrogate (it is UTF-8 percent-encoded); JSON escapes can."""
NUMBERS = [2**31, 2**63, -(2**63) - 1, 10**30, 1e300]
NUMBERS_IN_BODIES = [float("nan"), float("inf"), float("-inf")]
"""Sent as JSON's unofficial `NaN` and `Infinity`, which Python's parser accepts."""
MOMENT = re.compile(r"^\d{4}-\d\d-\d\dT")

Path = tuple[str | int, ...]


def _leaves(value: Any) -> list[tuple[Path, Any]]:
    """Every string and number inside `value`, with the keys and indexes leading to it."""
    found: list[tuple[Path, Any]] = []
    stack: list[tuple[Path, Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            stack.extend(((*path, key), child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend(((*path, index), child) for index, child in enumerate(item))
        elif isinstance(item, str | int | float) and not isinstance(item, bool):
            found.append((path, item))
    return found


def _replaced(value: Any, path: Path, new: Any) -> Any:
    if not path:
        return new
    copy = json.loads(json.dumps(value))
    parent = copy
    for step in path[:-1]:
        parent = parent[step]
    parent[path[-1]] = new
    return copy


def _hostile(leaf: Any, in_body: bool) -> list[Any]:
    if isinstance(leaf, str):
        values = list(TEXT_ANYWHERE) + (TEXT_IN_BODIES if in_body else [])
        return values + (["9999-12-31T23:59:59-14:00"] if MOMENT.match(leaf) else [])
    return NUMBERS + (NUMBERS_IN_BODIES if in_body else [])


@schemathesis.hook
def flatmap_case(_context: Any, case: Any) -> st.SearchStrategy[Any]:
    choices: list[tuple[str, Path, Any]] = []
    for container in ("path_parameters", "query"):
        for path, leaf in _leaves(getattr(case, container) or {}):
            choices += [(container, path, bad) for bad in _hostile(leaf, in_body=False)]
    if isinstance(case.body, dict | list):
        for path, leaf in _leaves(case.body):
            choices += [("body", path, bad) for bad in _hostile(leaf, in_body=True)]
    if not choices:
        return st.just(case)

    def inject(choice: tuple[str, Path, Any]) -> Any:
        container, path, bad = choice
        changed = case.derive(keep_auth=True)
        if container == "body":
            # Bytes, written by Python's encoder: NaN, Infinity and lone surrogates intact.
            changed.body = json.dumps(_replaced(case.body, path, bad)).encode()
        else:
            setattr(changed, container, _replaced(getattr(case, container), path, bad))
        return changed

    return st.booleans().flatmap(
        lambda hostile: st.sampled_from(choices).map(inject) if hostile else st.just(case)
    )


@schemathesis.check
def json_client_error_or_success(_ctx: Any, response: Any, _case: Any) -> bool | None:
    """A success, or a client error as JSON with a `detail`: never a 5xx, never a bare page."""
    status = response.status_code
    if 200 <= status < 300:
        return None  # its content type is `content_type_conformance`'s to judge
    if not 400 <= status < 500:
        raise AssertionError(f"status {status}: a request may only succeed or be refused")
    content_type = response.headers.get("content-type", [""])
    content_type = content_type[0] if isinstance(content_type, list) else content_type
    if not content_type.startswith("application/json"):
        raise AssertionError(f"status {status} answered {content_type!r}, not JSON")
    if "detail" not in json.loads(response.content):
        raise AssertionError(f"status {status} without a `detail`")
    return None
