"""bandit's tests through ruff's `S` rules, the in-process checks and the residual bandit:
the same findings as bandit itself, with bandit's test ids and severities."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from activities.checks import CheckActivities
from checks.bandit_rules import BIDI_CHARACTERS, IMPORT_BLACKLIST, RESIDUAL, residual_tests
from checks.security import bandit_findings, security_scan
from checks.workspace import planned
from core.contracts import ChecksInput, ChecksReport, Finding, Severity, TurnKey
from core.infrastructure.settings import SandboxSettings
from core.persistence import check_results, storage
from core.persistence.db import Database
from tests.checks.bandit_corpus import CORPUS

BANDIT = Path(sys.executable).parent / "bandit"

Graded = tuple[str | None, int | None, str | None, str]


def graded(findings: list[Finding]) -> set[Graded]:
    return {(f.file, f.line, f.rule, f.severity.value) for f in findings}


def blacklisted_calls() -> tuple[dict[str, str], dict[str, int]]:
    """A file calling every qualified name of bandit's call blacklist; the line of each."""
    from bandit.blacklists import calls

    lines: list[str] = []
    where: dict[str, int] = {}
    for check in calls.gen_blacklist()["Call"]:
        for name in check["qualnames"]:
            module = name.rpartition(".")[0]
            if module:
                lines.append(f"import {module}")
            lines.append(f"{name}(x)")
            where[name] = len(lines)
    return {"calls/all.py": "\n".join(lines) + "\n"}, where


def blacklisted_imports() -> dict[str, str]:
    """Every module of bandit's import blacklist, imported in each way Python allows."""
    lines = []
    for check in IMPORT_BLACKLIST:
        for name in check.qualnames:
            parent, _, last = name.rpartition(".")
            lines += [f"import {name}", f"import {name}.sub", f"from {name} import thing"]
            lines += [f"from {parent} import {last}"] if parent else []
            lines += [f"import os, {name}", f"__import__({name!r})"]
    return {"imports/all.py": "\n".join(lines) + "\n"}


def bandit_itself(files: dict[str, str], root: Path) -> set[Graded]:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    run = subprocess.run(
        [str(BANDIT), "-r", ".", "-f", "json", "-q", "--ignore-nosec"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return graded(bandit_findings(json.loads(run.stdout), root))


async def scanned(files: dict[str, str], scratch: Path) -> tuple[set[Graded], ChecksReport]:
    report = ChecksReport(gate="security_review")
    workspace = planned(files, scratch / "workspace", scratch, report)
    await security_scan(workspace, report, 120)
    return graded(report.findings), report


def test_the_import_blacklist_and_the_bidi_characters_are_bandits() -> None:
    from bandit.blacklists import imports
    from bandit.plugins import trojansource

    theirs = [
        (c["id"], c["name"], c["level"].lower(), tuple(c["qualnames"]), c["message"])
        for c in imports.gen_blacklist()["Import"]
    ]
    ours = [(c.id, c.name, c.severity.value, c.qualnames, c.message) for c in IMPORT_BLACKLIST]
    assert ours == theirs
    assert BIDI_CHARACTERS == trojansource.BIDI_CHARACTERS


async def test_the_security_scan_finds_what_bandit_finds(tmp_path: Path) -> None:
    calls, line = blacklisted_calls()
    files = {**CORPUS, **calls, **blacklisted_imports()}

    ours, report = await scanned(files, tmp_path / "ours")
    theirs = bandit_itself(files, tmp_path / "bandit")

    assert len(theirs) > 300  # every test fired, most of them several times
    assert ours - theirs == set()
    # What ruff does not report, all LOW: B603 on a literal command, and two functions
    # of `random` that bandit lists and ruff does not.
    assert theirs - ours == {
        ("app/shell.py", 11, "B603", "low"),  # subprocess.Popen("ls")
        ("app/shell.py", 17, "B603", "low"),  # subprocess.Popen(["ls"])
        ("calls/all.py", line["random.sample"], "B311", "low"),
        ("calls/all.py", line["random.getrandbits"], "B311", "low"),
    }
    assert report.notes == []


async def test_a_file_that_does_not_parse_is_a_note(tmp_path: Path) -> None:
    ours, report = await scanned({"app/broken.py": "def f(:\n", "app/ok.py": "x = 1\n"}, tmp_path)
    assert ours == set()
    assert report.notes == ["the security scan could not parse 1 file(s): app/broken.py"]


def test_bandit_itself_is_needed_only_where_a_file_names_its_tests() -> None:
    assert residual_tests("import os\nos.system(cmd)\n") == ()
    assert residual_tests("import torch\nmodel = torch.load(path)\n") == ("B614",)
    assert residual_tests("from Cryptodome.Cipher import ARC4\n") == ("B304",)
    assert {r.test for r in RESIDUAL} == {"B301", "B304", "B308", "B601", "B614", "B615", "B703"}


PLANTED = {
    "svc/app.py": """\
import os
import subprocess
import xmlrpc.client

import yaml
from Crypto.Cipher import ARC4

DB_PASSWORD = "s3cr3t-Passw0rd!"


def run(command, text, path):
    subprocess.call(command, shell=True)  # noqa: S602
    subprocess.call("ls -l", shell=True)
    os.chmod(path, 0o777)
    os.chmod(path, 0o750)
    ARC4.new(b"key")
    return eval(text), yaml.load(text), xmlrpc.client
""",
    "svc/model.py": "import torch\n\n\ndef weights(path):\n    return torch.load(path)\n",
    "svc/trojan.py": 'x = "none\u202e"\n',
    "svc/clean.py": "def add(a, b):\n    return a + b\n",
}


async def test_planted_issues_keep_bandits_ids_severities_and_messages(
    sqlite_db: Database,
) -> None:
    run_id = uuid.uuid4().hex
    key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id="backend", turn=0)
    for path, content in PLANTED.items():
        await storage.write_artifact(
            sqlite_db, key, path=path, content=content, role="backend_engineer", model="test"
        )
    activities = CheckActivities(sqlite_db, SandboxSettings(_env_file=None))
    report = await activities.run_checks(ChecksInput(run_id=run_id, gate="security_review"))

    found = {(f.file, f.line, f.rule): f for f in report.findings if f.source == "bandit"}
    expected = {
        ("svc/app.py", 12, "B602"): Severity.HIGH,  # its noqa comment does not hide it
        ("svc/app.py", 13, "B602"): Severity.LOW,  # a literal command
        ("svc/app.py", 14, "B103"): Severity.HIGH,  # world-writable
        ("svc/app.py", 15, "B103"): Severity.MEDIUM,  # group-executable
        ("svc/app.py", 16, "B304"): Severity.HIGH,  # bandit itself: ruff misses ARC4
        ("svc/app.py", 17, "B307"): Severity.MEDIUM,  # eval
        ("svc/app.py", 17, "B506"): Severity.MEDIUM,  # yaml.load
        ("svc/app.py", 3, "B411"): Severity.HIGH,  # a dotted import ruff misses
        ("svc/app.py", 6, "B413"): Severity.HIGH,
        ("svc/app.py", 8, "B105"): Severity.LOW,
        ("svc/model.py", 5, "B614"): Severity.MEDIUM,  # bandit itself: no ruff rule
        ("svc/trojan.py", 1, "B613"): Severity.HIGH,
    }
    assert {k: found[k].severity for k in expected if k in found} == expected
    shell = found[("svc/app.py", 12, "B602")]
    assert "shell=True" in shell.message and "high confidence; ruff S602" in shell.message
    assert shell.suggested_fix and shell.suggested_fix.startswith("See https://")
    # the secret scan still rates the password itself
    assert ("svc/app.py", 8, "hardcoded-password") in {
        (f.file, f.line, f.rule) for f in report.blocking
    }
    # bandit itself ran on the two files that name what its remaining tests look for
    assert await check_results.count_results(sqlite_db, run_id, "bandit") == 2
    assert await check_results.count_results(sqlite_db, run_id, "security") == len(PLANTED)
