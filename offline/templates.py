"""The template files the offline model fills: `offline/files/<name>.tmpl`.

A template named `backend/app.py` is the text of the delivered `backend/app.py` with
`{{placeholder}}` holes; `backend/app/auth_scope.py` is a section that goes into one of those
holes only when the goal needs it. Sections that are sometimes left out begin with the blank
line that separates them, so leaving them out leaves no stray blank line behind. Every
template file ends with exactly one newline.

Placeholders are `{{name}}` rather than `str.format` fields or `string.Template` `$names`
because the templates are Python, JavaScript and SQL full of literal braces (dicts, blocks)
and dollars (JS template literals, PBKDF2 hash strings). Values are inserted as they are:
multi-line values carry their own indentation, and nothing is escaped. Labels (the
"produced by" header line) are added by the caller, so no template starts with one.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

_PLACEHOLDER = re.compile(r"\{\{(\w+)\}\}")
SUFFIX = ".tmpl"


@functools.cache
def template(name: str) -> str:
    """The text of template `name` (a path under `offline/files/`, without `.tmpl`)."""
    *folders, file_name = name.split("/")
    path = resources.files("offline").joinpath("files", *folders, file_name + SUFFIX)
    return path.read_text(encoding="utf-8")


def fill(text: str, **values: str) -> str:
    """`text` with every `{{name}}` replaced by `values[name]`.

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

    filled = _PLACEHOLDER.sub(substitute, text)
    unused = sorted(set(values) - used)
    if unused:
        raise KeyError(f"values without a placeholder: {', '.join(unused)}")
    return filled


def render(name: str, **values: str) -> str:
    """Template `name`, filled with `values`."""
    return fill(template(name), **values)
