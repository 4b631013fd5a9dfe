"""The sandbox's stack, read from this environment, and dependency files that ask for more."""

from __future__ import annotations

import importlib.metadata
import json
import platform
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from activities.checks import CheckActivities
from checks.dependencies import NOT_IN_SANDBOX, sandbox_warning
from checks.gates import CheckTimeouts
from checks.requirements import Ecosystem, normalize_name
from checks.stack import sandbox_stack, unavailable_requirements
from core.contracts import ChecksInput, Severity, TurnKey
from core.infrastructure.settings import SandboxSettings
from core.persistence import storage
from core.persistence.db import Database

ROOT = Path(__file__).resolve().parents[2]
FASTAPI = importlib.metadata.version("fastapi")
ADVICE = NOT_IN_SANDBOX.format(has="")

REQUIREMENTS = textwrap.dedent(
    """\
    # the service
    fastapi
    requests-oauthlib-not-here
    fastapi>=999
    """
)


def missing(path: str, content: str) -> list[tuple[int | None, str, str | None]]:
    return [(m.line, m.requirement, m.installed) for m in unavailable_requirements(path, content)]


def test_the_stack_is_what_importlib_metadata_reports_for_this_environment() -> None:
    stack = sandbox_stack()

    for name in ("fastapi", "pydantic", "pytest", "httpx"):
        assert stack.packages[name] == importlib.metadata.version(name)
    assert stack.python == platform.python_version()
    assert list(stack.packages) == sorted(stack.packages)
    # The product is not something generated code can depend on.
    [product] = set(importlib.metadata.packages_distributions()["checks"])
    assert normalize_name(product) not in stack.packages
    assert sandbox_stack() is stack  # read once per process


def test_a_requirements_file_naming_what_the_sandbox_lacks() -> None:
    assert missing("backend/requirements.txt", REQUIREMENTS) == [
        (3, "requests-oauthlib-not-here", None),
        (4, "fastapi>=999", FASTAPI),
    ]
    assert missing("requirements.txt", "fastapi\n") == []
    assert missing("requirements-dev.txt", f"fastapi=={FASTAPI}\n") == []


@pytest.mark.parametrize(
    "line",
    [
        "# requests-oauthlib-not-here",
        "-r requirements-base.txt",
        "-e .",
        "--index-url https://pypi.example.com/simple",
        "json",
        "sqlite3",
        'not-here-either; sys_platform == "no-such-platform"',
        'pytest>=8 ; python_version >= "3.8"',
        "Pydantic[email]>=2 --hash=sha256:0123456789abcdef",
        "git+https://github.com/example/project.git",
    ],
)
def test_what_is_no_missing_dependency(line: str) -> None:
    assert missing("requirements.txt", line + "\n") == []


def test_pyproject_project_dependencies() -> None:
    pyproject = textwrap.dedent(
        """\
        [tool.poetry.dependencies]
        poetry-only-not-here = "*"

        [project]
        name = "service"
        dependencies = [
            "fastapi>=0.100",
            "requests-oauthlib-not-here>=1.0",
            'fastapi-not-here',
        ]

        [project.optional-dependencies]
        docs = ["mkdocs-not-here"]
        """
    )
    assert missing("service/pyproject.toml", pyproject) == [
        (8, "requests-oauthlib-not-here>=1.0", None),
        (9, "fastapi-not-here", None),
    ]
    assert missing("pyproject.toml", "[project\nname =") == []


def test_package_json_dependencies_are_not_in_the_sandbox() -> None:
    package = json.dumps(
        {"name": "web", "dependencies": {"react": "^18.2.0"}, "devDependencies": {"jest": "29"}},
        indent=2,
    )
    [react] = unavailable_requirements("web/package.json", package)

    assert (react.line, react.requirement, react.ecosystem) == (4, "react@^18.2.0", Ecosystem.NPM)
    assert missing("web/package.json", "{not json") == []


def test_the_warning_for_the_write_names_file_lines_and_packages() -> None:
    warning = sandbox_warning("backend/requirements.txt", REQUIREMENTS)

    assert warning == (
        "Warning: backend/requirements.txt requires `requests-oauthlib-not-here` (line 3), "
        f"`fastapi>=999` (line 4; it has fastapi {FASTAPI}): {ADVICE}."
    )
    assert "\n" not in warning
    assert sandbox_warning("backend/requirements.txt", "fastapi\npytest\n") is None
    assert sandbox_warning("backend/app.py", "import requests_oauthlib_not_here\n") is None


def test_without_packaging_only_names_are_compared() -> None:
    script = textwrap.dedent(
        """\
        import sys
        sys.modules["packaging"] = None  # as if it were not installed
        from checks.stack import unavailable_requirements
        print([m.requirement for m in unavailable_requirements("requirements.txt", sys.argv[1])])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, "fastapi>=999\nrequests-oauthlib-not-here\n"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.strip() == "['requests-oauthlib-not-here']"


async def test_the_security_review_reports_requirements_the_sandbox_lacks(
    sqlite_db: Database,
) -> None:
    run_id = uuid.uuid4().hex
    key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id="backend", turn=0)
    await storage.write_artifact(
        sqlite_db,
        key,
        path="backend/requirements.txt",
        content=REQUIREMENTS,
        role="backend_engineer",
        model="test",
    )
    activities = CheckActivities(
        sqlite_db, SandboxSettings(_env_file=None), timeouts=CheckTimeouts()
    )
    report = await activities.run_checks(ChecksInput(run_id=run_id, gate="security_review"))

    found = [f for f in report.blocking if f.rule == "not-in-sandbox"]
    assert [(f.file, f.line, f.severity, f.source) for f in found] == [
        ("backend/requirements.txt", 3, Severity.HIGH, "dependencies"),
        ("backend/requirements.txt", 4, Severity.HIGH, "dependencies"),
    ]
    assert found[0].message == f"`requests-oauthlib-not-here` is {ADVICE}"
    assert "it has fastapi " + FASTAPI in found[1].message
