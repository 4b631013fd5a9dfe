"""What a dependency file declares: requirements*.txt lines, pyproject.toml's
`[project] dependencies` and package.json's `dependencies`, each with the line it is on.

Options (-r, -e, --index-url, ...) and URL installs without a name declare nothing here:
the pin rules (`checks.dependencies`) judge those lines on their own.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from checks.workspace import REQUIREMENTS_FILE

REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)\s*(?:\[[^\]]*\])?\s*(?P<spec>[^;@]*?)\s*"
    r"(?P<url>@.*?)?\s*(?:;(?P<marker>.*))?$"
)
"""One PEP 508 requirement: name, extras, version specifiers, a URL, an environment marker."""
HASH_OPTIONS = re.compile(r"\s--\S.*$")
"""Per-requirement options (`--hash=...`) that follow a requirement on its line."""


class Ecosystem(StrEnum):
    PYTHON = "python"
    NPM = "npm"


@dataclass(frozen=True)
class Declared:
    """One requirement of a dependency file."""

    line: int | None
    """1-based, where the file shows it; None where it could not be told."""
    text: str
    """As written, e.g. `fastapi>=0.110` or `react@^18.2.0`."""
    name: str
    spec: str
    """Version specifiers (PEP 440 for Python, a semver range for npm); "" for any version."""
    marker: str
    """A PEP 508 environment marker; "" when it applies everywhere."""
    ecosystem: Ecosystem


def normalize_name(name: str) -> str:
    """The PEP 503 form of a distribution name: `Foo_Bar.baz` -> `foo-bar-baz`."""
    return re.sub(r"[-_.]+", "-", name).lower()


def is_dependency_file(path: str) -> bool:
    name = PurePosixPath(path).name
    return bool(REQUIREMENTS_FILE.match(name)) or name in ("pyproject.toml", "package.json")


def declared_requirements(path: str, content: str) -> list[Declared]:
    """The requirements `content` declares, if `path` names a dependency file; else none."""
    name = PurePosixPath(path).name
    if REQUIREMENTS_FILE.match(name):
        return _from_requirements_txt(content)
    if name == "pyproject.toml":
        return _from_pyproject(content)
    if name == "package.json":
        return _from_package_json(content)
    return []


def requirement_lines(content: str) -> Iterable[tuple[int, str]]:
    """(line number, requirement) with comments dropped and continuation lines joined."""
    pending, start = "", 0
    for number, raw in enumerate(content.splitlines(), start=1):
        line = re.split(r"(?:^|\s)#", raw, maxsplit=1)[0].strip()
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = (pending + line).strip(), ""
        if line:
            yield start, line


def parse_requirement(text: str) -> re.Match[str] | None:
    """A requirement's parts (see `REQUIREMENT`), per-requirement options dropped."""
    return REQUIREMENT.match(HASH_OPTIONS.sub("", text).strip())


def _python_requirement(line: int | None, text: str) -> Declared | None:
    match = parse_requirement(text)
    # A VCS or archive URL without `name @` names no distribution that could be checked.
    if match is None or ("://" in text and not match["url"]):
        return None
    return Declared(
        line=line,
        text=HASH_OPTIONS.sub("", text).strip(),
        name=match["name"],
        spec=match["spec"].strip("() "),
        marker=(match["marker"] or "").strip(),
        ecosystem=Ecosystem.PYTHON,
    )


def _python_requirements(entries: Iterable[tuple[int | None, str]]) -> list[Declared]:
    """(line, text) entries as requirements; those that name no distribution dropped."""
    parsed = (_python_requirement(line, text) for line, text in entries)
    return [requirement for requirement in parsed if requirement is not None]


def _from_requirements_txt(content: str) -> list[Declared]:
    # A line starting with "-" is an option: -r/-c another file, -e a checkout, an index.
    return _python_requirements(
        (number, line) for number, line in requirement_lines(content) if not line.startswith("-")
    )


def _from_pyproject(content: str) -> list[Declared]:
    try:
        project = tomllib.loads(content).get("project")
    except tomllib.TOMLDecodeError:
        return []
    dependencies = project.get("dependencies") if isinstance(project, dict) else None
    if not isinstance(dependencies, list):
        return []
    lines = content.splitlines()
    after = _line_of(lines, "dependencies", after=_line_of(lines, "[project]") or 0) or 0
    return _python_requirements(
        (_line_of(lines, f'"{text}"', f"'{text}'", after=after), text)
        for text in dependencies
        if isinstance(text, str)
    )


def _from_package_json(content: str) -> list[Declared]:
    try:
        package = json.loads(content)
    except ValueError:
        return []
    dependencies = package.get("dependencies") if isinstance(package, dict) else None
    if not isinstance(dependencies, dict):
        return []
    lines = content.splitlines()
    after = _line_of(lines, '"dependencies"') or 0
    return [
        Declared(
            line=_line_of(lines, json.dumps(name), after=after),
            text=f"{name}@{spec}",
            name=name,
            spec=str(spec),
            marker="",
            ecosystem=Ecosystem.NPM,
        )
        for name, spec in dependencies.items()
    ]


def _line_of(lines: Sequence[str], *needles: str, after: int = 0) -> int | None:
    """The first line at or after line `after` (1-based) that holds one of `needles`."""
    for index in range(max(after - 1, 0), len(lines)):
        if any(needle in lines[index] for needle in needles):
            return index + 1
    return None
