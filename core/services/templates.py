"""Templates as files: the built-in ones, a user's YAML file, or inline text from the API.

Parsing is bounded before it starts (size, nesting, no aliases) and then validated by the
Task DSL (workflows/dsl.py), which names every problem.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import yaml
from pydantic import ValidationError

from workflows.dsl import Template, TemplateError, validate

BUILTIN_TEMPLATES = Path(__file__).resolve().parent / "builtin_templates"
DEFAULT_TEMPLATE = "sdlc"

MAX_TEMPLATE_CHARS = 200_000
"""A template's text (or its JSON object, serialized): parsing is bounded before it starts."""
MAX_NESTING = 32
"""Mappings and lists inside each other; a template needs five."""

_YAML_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml when PyYAML was built with it: the same safe loader, far faster."""


class _Refused(yaml.YAMLError):
    """Parseable YAML that a template may not be; read like the parser's own errors."""

    def __init__(self, problem: str, event: yaml.Event) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = event.start_mark


def _check_structure(text: str) -> None:
    """Refuse deep nesting and aliases before anything is built from the text.

    The parser streams events without recursion, but building the document recurses once
    per level (a few thousand levels exhaust the stack), and aliases can multiply a few
    lines into billions of nodes for the validation that follows.
    """
    depth = 0
    for event in yaml.parse(text, Loader=_YAML_LOADER):
        if isinstance(event, yaml.AliasEvent):
            raise _Refused("aliases (*name) are not supported in templates", event)
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_NESTING:
                raise _Refused(f"nested deeper than {MAX_NESTING} levels", event)
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_template(text: str, source: str = "template") -> Template:
    """Parse and check a template's shape. CPU-bound on large input: servers call it in a thread."""
    if len(text) > MAX_TEMPLATE_CHARS:
        raise TemplateError(
            source,
            [f"the template has {len(text)} characters; at most {MAX_TEMPLATE_CHARS} are allowed"],
        )
    try:
        _check_structure(text)
        data = yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise TemplateError(
            source, [f"not valid YAML{where}: {getattr(exc, 'problem', exc)}"]
        ) from None
    if not isinstance(data, dict):
        raise TemplateError(source, ["a template is a YAML mapping with 'name' and 'tasks'"])
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        raise TemplateError(source, [_describe(err) for err in exc.errors()]) from None


def _describe(error: object) -> str:
    err = error if isinstance(error, dict) else {}
    # A key the YAML spelled with escapes (NUL, a lone surrogate) is named by its repr:
    # the message goes into a JSON answer, which cannot carry a lone surrogate.
    location = ".".join(
        repr(part) if isinstance(part, str) and not part.isprintable() else str(part)
        for part in err.get("loc", ())
    )
    return f"{location}: {err.get('msg', 'invalid')}" if location else str(err.get("msg"))


def available_templates() -> dict[str, Path]:
    return {path.stem: path for path in sorted(BUILTIN_TEMPLATES.glob("*.yaml"))}


def load_template(name_or_path: str, roles: Collection[str]) -> Template:
    """A built-in template by name, or a YAML file by path; parsed and validated."""
    builtin = available_templates()
    if name_or_path in builtin:
        path = builtin[name_or_path]
    else:
        path = Path(name_or_path)
        if not path.is_file():
            raise TemplateError(
                name_or_path,
                [f"no such template or file (built-in templates: {', '.join(builtin)})"],
            )
    template = parse_template(path.read_text(encoding="utf-8"), str(path))
    validate(template, roles, str(path))
    return template
