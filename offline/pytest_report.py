"""Reading a test run as an engineer reads it: from the text the command tool gave back, the
exit code, the tally, each failed test and what its assertion compared; and from a failed
status-code assertion, the exact-string edit that makes the route answer what its test
expects.

The text is whatever the sandbox returned (`agents.commands.render_result`): pytest's `-q`
output, `[stderr]` and `[exit code N]`. Nothing here assumes which test failed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

_EXIT_CODE = re.compile(r"^\[exit code (-?\d+)\]$", re.M)
_FAILED = re.compile(r"^FAILED (\S+?)::(\S+)", re.M)
"""A line of pytest's short test summary: `FAILED tests/test_app.py::test_x - Assert...`."""
_SECTION = re.compile(r"^_{3,} (\S+) _{3,}$", re.M)
"""The header of one failure's traceback: `____ test_x ____`."""
_COMPARISON = re.compile(r"^E\s+(?:AssertionError: )?assert (\S+) == (\S+)\s*$", re.M)
_TALLY = re.compile(r"^=*\s*(\d+ \w+(?:, \d+ \w+)*) in [\d.]+s\b", re.M)
"""The closing line, `1 failed, 15 passed in 2.04s`; the duration is left out of the tally."""


@dataclass(frozen=True)
class Failure:
    test_file: str
    test: str
    got: str | None = None
    """The left side of the failed `assert got == expected`, when that is what failed."""
    expected: str | None = None

    @property
    def assertion(self) -> str:
        if self.got is None:
            return "its traceback has no `==` comparison"
        return f"assert {self.got} == {self.expected}"


@dataclass(frozen=True)
class PytestRun:
    exit_code: int | None
    """None: the command did not end with an exit code (no sandbox, a limit stopped it)."""
    tally: str
    """e.g. `1 failed, 15 passed`; empty when pytest printed none."""
    failures: tuple[Failure, ...]


def read_test_run(output: str) -> PytestRun:
    codes = _EXIT_CODE.findall(output)
    tallies = _TALLY.findall(output)
    tracebacks = _tracebacks(output)
    failures = []
    for test_file, test in dict.fromkeys(_FAILED.findall(output)):
        comparison = _COMPARISON.search(tracebacks.get(test, ""))
        got, expected = comparison.groups() if comparison else (None, None)
        failures.append(Failure(test_file, test, got, expected))
    return PytestRun(
        exit_code=int(codes[-1]) if codes else None,
        tally=tallies[-1] if tallies else "",
        failures=tuple(failures),
    )


def _tracebacks(output: str) -> dict[str, str]:
    """Each failure's traceback by test name: from its header to the next header."""
    headers = list(_SECTION.finditer(output))
    ends = [h.start() for h in headers[1:]] + [len(output)]
    return {h.group(1): output[h.end() : end] for h, end in zip(headers, ends, strict=False)}


@dataclass(frozen=True)
class Edit:
    """An exact-string replacement: `old` occurs exactly once in the file."""

    path: str
    old: str
    new: str
    why: str


_ROUTE_VERBS = ("create", "list", "get", "update", "delete")


def status_edit(path: str, source: str, failure: Failure) -> Edit | None:
    """The edit that makes the route `failure`'s test exercises answer the status code the
    test expects, or None when the failure is not a status-code mismatch this can place.

    `test_delete_...` exercises the `delete_...` route; within that function, the line that
    names the status the test got (e.g. `status.HTTP_200_OK`) is the one to change.
    """
    wrong, right = _status_name(failure.got), _status_name(failure.expected)
    verb = failure.test.removeprefix("test_").split("_", 1)[0]
    if wrong is None or right is None or verb not in _ROUTE_VERBS:
        return None
    lines = source.splitlines(keepends=True)
    body = _function_lines(lines, f"def {verb}_")
    suspects = [n for n in body if wrong in lines[n]]
    if len(suspects) != 1:
        return None
    old = _unique_context(lines, suspects[0], source)
    if old is None:
        return None
    phrase = HTTPStatus(int(failure.expected or 0)).phrase
    why = f"the {verb} route answers {failure.got}, its test expects {failure.expected} ({phrase})"
    return Edit(path, old, old.replace(wrong, right), why)


def _status_name(code: str | None) -> str | None:
    """`204` -> `status.HTTP_204_NO_CONTENT`, the constant FastAPI code names it by."""
    if code is None or not code.isdigit():
        return None
    try:
        found = HTTPStatus(int(code))
    except ValueError:
        return None
    return f"status.HTTP_{found.value}_{found.name}"


def _function_lines(lines: list[str], prefix: str) -> list[int]:
    """Indexes of the lines of the top-level function whose `def` line starts with `prefix`."""
    starts = [n for n, line in enumerate(lines) if line.startswith(prefix)]
    if len(starts) != 1:
        return []
    body = [starts[0]]
    for n in range(starts[0] + 1, len(lines)):
        if lines[n].strip() and not lines[n][0].isspace():
            break
        body.append(n)
    return body


def _unique_context(lines: list[str], index: int, source: str) -> str | None:
    """Line `index`, with as many lines before it as make it occur once in `source`."""
    for first in range(index, -1, -1):
        text = "".join(lines[first : index + 1]).rstrip("\n")
        if source.count(text) == 1:
            return text
    return None
