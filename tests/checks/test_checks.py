"""The gate checks on real files in a real database, and the sandbox that runs generated tests."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import textwrap
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from temporalio.exceptions import ApplicationError

from activities.checks import CheckActivities
from checks import gates
from checks.dependencies import dependency_findings
from checks.gates import CheckTimeouts, GateWithoutChecks
from checks.sandbox import SANDBOX_UID_BASE, SANDBOX_UID_SPAN, SandboxLimits, sandbox_backend
from checks.security import secret_findings
from core.contracts import ChecksInput, ChecksReport, Finding, GateKind, Severity, TurnKey
from core.infrastructure.settings import SandboxSettings
from core.persistence import storage
from core.persistence.db import Database
from offline import deliverables

GOAL = "Build a task management API with user authentication"

# Assembled at run time so secret scanners do not flag this file itself.
FAKE_AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
PRIVATE_KEY = (
    "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"
)

SHELL_APP = """\
import subprocess


def run(user_input: str) -> int:
    return subprocess.call(user_input, shell=True)


def add(a: int, b: int) -> int:
    return a + b
"""
SHELL_APP_SHELL_LINE = 5

SHELL_APP_TESTS = """\
from app import add


def test_adds() -> None:
    assert add(2, 2) == 4


def test_adds_negative_numbers() -> None:
    total = add(-2, -3)
    assert total == -4, "sums of negatives are negative"
"""


async def check(
    db: Database, files: dict[str, str], gate: str, *, test_timeout_seconds: float = 60.0
) -> ChecksReport:
    """Store `files` as a fresh run's workspace and run one gate's checks on it."""
    run_id = uuid.uuid4().hex
    key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id="backend", turn=0)
    for path, content in files.items():
        await storage.write_artifact(
            db, key, path=path, content=content, role="backend_engineer", model="test"
        )
    activities = CheckActivities(
        db,
        SandboxSettings(_env_file=None),
        timeouts=CheckTimeouts(tests_seconds=test_timeout_seconds),
    )
    return await activities.run_checks(ChecksInput(run_id=run_id, gate=gate))


def high(report: ChecksReport, source: str) -> list[Finding]:
    return [f for f in report.blocking if f.source == source]


# --- the gates on ordinary code ---------------------------------------------------------


async def test_code_review_names_the_failing_test(sqlite_db: Database) -> None:
    files = {"backend/app.py": SHELL_APP, "backend/tests/test_app.py": SHELL_APP_TESTS}
    report = await check(sqlite_db, files, "code_review")

    assert (report.tests_passed, report.tests_failed) == (1, 1)
    [failure] = high(report, "pytest")
    assert failure.file == "backend/tests/test_app.py"
    assert failure.line == 10
    assert "backend/tests/test_app.py::test_adds_negative_numbers" in failure.message
    assert "sums of negatives are negative" in failure.message
    assert report.network_isolated == sandbox_backend().network_isolated


async def test_security_review_reports_shell_injection(sqlite_db: Database) -> None:
    files = {"backend/app.py": SHELL_APP, "backend/tests/test_app.py": SHELL_APP_TESTS}
    report = await check(sqlite_db, files, "security_review")

    [shell] = [f for f in high(report, "bandit") if f.rule == "B602"]
    assert (shell.file, shell.line) == ("backend/app.py", SHELL_APP_SHELL_LINE)
    assert "shell=True" in shell.message and "confidence" in shell.message
    # Asserts in tests are how pytest works, so B101 is not reported there.
    assert not [f for f in report.findings if f.rule == "B101"]


async def test_a_test_module_that_does_not_import_fails_alone(sqlite_db: Database) -> None:
    files = {
        "backend/app.py": SHELL_APP,
        "backend/tests/test_app.py": SHELL_APP_TESTS,
        "backend/tests/test_missing.py": "import no_such_module\n",
    }
    report = await check(sqlite_db, files, "code_review")

    assert (report.tests_passed, report.tests_failed) == (1, 2)
    [broken] = [f for f in high(report, "pytest") if f.file == "backend/tests/test_missing.py"]
    assert "No module named 'no_such_module'" in broken.message


async def test_a_clean_generated_backend_passes_both_gates(sqlite_db: Database) -> None:
    files = {
        path: text
        for role in ("database_engineer", "backend_engineer")
        for path, text in deliverables(role, GOAL, {}, "offline-sim-1").files.items()
    }
    code = await check(sqlite_db, files, "code_review")
    security = await check(sqlite_db, files, "security_review")

    assert code.blocking == [] and security.blocking == []
    assert code.tests_passed > 0 and code.tests_failed == 0
    assert not [n for n in code.notes + security.notes if "did not run" in n]


async def test_ruff_findings_are_graded(sqlite_db: Database) -> None:
    files = {"lib/broken.py": "def f(:\n    pass\n", "lib/names.py": "import os\nprint(y)\n"}
    report = await check(sqlite_db, files, "code_review")

    graded = {(f.file, f.rule): f.severity for f in report.findings if f.source == "ruff"}
    assert graded[("lib/names.py", "F821")] == Severity.HIGH
    assert graded[("lib/names.py", "F401")] == Severity.LOW
    assert graded[("lib/broken.py", "invalid-syntax")] == Severity.HIGH
    assert "no test files (test_*.py, *_test.py): no tests were run" in report.notes


async def test_secrets_are_high_findings(sqlite_db: Database) -> None:
    files = {
        "backend/settings.py": f'AWS_KEY = "{FAKE_AWS_KEY}"\nDB_PASSWORD = "s3cr3t-Passw0rd!"\n',
        "deploy/id_rsa": PRIVATE_KEY + "\n",
        "backend/tests/test_login.py": 'password = "correct horse battery staple"\n',
        "backend/config.py": 'API_KEY = os.environ["API_KEY"]\npassword = "${PASSWORD}"\n',
    }
    report = await check(sqlite_db, files, "security_review")

    found = {(f.file, f.line, f.rule) for f in high(report, "secrets")}
    assert found == {
        ("backend/settings.py", 1, "aws-access-key"),
        ("backend/settings.py", 2, "hardcoded-password"),
        ("deploy/id_rsa", 1, "private-key"),
    }
    # A report must not spread the secret it found.
    assert not [f for f in report.findings if FAKE_AWS_KEY in f.message]


def test_token_formats_are_recognized_in_any_file() -> None:
    tokens = {
        "anthropic-api-key": "sk-ant-" + "api03-" + "a1B2c3D4e5F6g7H8i9J0kLmN",
        "openai-api-key": "sk-" + "proj-" + "Z9y8X7w6V5u4T3s2R1q0PoNm",
        "github-token": "ghp_" + "a" * 20 + "1" * 16,
        "slack-token": "xoxb-" + "123456789012-abcdefABCDEF",
    }
    text = "\n".join(f"token_{n} = '{value}'" for n, value in enumerate(tokens.values()))
    rules = [f.rule for f in secret_findings({"tests/test_clients.py": text})]
    assert rules == list(tokens)


async def test_requirements_with_bad_pins(sqlite_db: Database) -> None:
    requirements = textwrap.dedent(
        """\
        # comments and blank lines are fine

        urllib==1.17
        PyYAML==5.3.1  # loads untrusted YAML
        jinja2>=2.10,<2.11
        requests>=2.0
        fastapi==0.115.0 \\
            --hash=sha256:0123456789abcdef
        flask~=0.12.2
        """
    )
    report = await check(sqlite_db, {"backend/requirements.txt": requirements}, "security_review")

    # Pins only: what the sandbox lacks is tests/checks/test_stack.py's.
    graded = {(f.line, f.severity, f.rule) for f in report.findings if f.rule != "not-in-sandbox"}
    assert graded == {
        (3, Severity.HIGH, "denied-package"),
        (4, Severity.HIGH, "vulnerable-pin"),
        (5, Severity.HIGH, "vulnerable-pin"),
        (6, Severity.LOW, "not-pinned"),
    }
    [yaml] = [f for f in report.findings if f.line == 4 and f.rule == "vulnerable-pin"]
    assert "CVE-2020-14343" in yaml.message and yaml.suggested_fix == "Require PyYAML>=5.4."


@pytest.mark.parametrize(
    ("requirement", "rule"),
    [
        ("pyyaml<5.4", "vulnerable-pin"),
        ("pyyaml<=5.4", None),
        ("pyyaml==5.3.*", "vulnerable-pin"),
        ("pyyaml~=5.3", None),
        ("PyYAML==5.4.1", None),
        ("python3_dateutil==2.8.0", "denied-package"),
        ("httpx", "not-pinned"),
        ("mylib @ https://example.com/mylib.tar.gz", "unpinned-source"),
        ("--extra-index-url https://pypi.internal.example/simple", "custom-index"),
        ("-r requirements-base.txt", None),
    ],
)
def test_requirement_rules(requirement: str, rule: str | None) -> None:
    findings = dependency_findings({"requirements-dev.txt": requirement + "\n"})
    assert [f.rule for f in findings] == ([rule] if rule else [])


async def test_unknown_gate_is_refused(sqlite_db: Database) -> None:
    with pytest.raises(ApplicationError, match="unknown gate") as refused:
        await check(sqlite_db, {"a.py": "x = 1\n"}, "style_review")
    assert refused.value.non_retryable


def test_every_checked_gate_kind_has_checks_and_no_other_has_any() -> None:
    assert set(gates.GATE_CHECKS) == {gate for gate in GateKind if gate.checked}


async def test_a_gate_that_runs_no_checks_is_refused(sqlite_db: Database) -> None:
    with pytest.raises(ApplicationError, match="'human_approval' runs no checks") as refused:
        await check(sqlite_db, {"a.py": "x = 1\n"}, GateKind.HUMAN_APPROVAL)
    assert refused.value.type == "GateWithoutChecks" and refused.value.non_retryable


async def test_a_checked_gate_without_checks_fails_loudly(
    sqlite_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker refuses to start; an activity built earlier refuses the gate: never a pass.
    running = CheckActivities(sqlite_db, SandboxSettings(_env_file=None))
    monkeypatch.delitem(gates.GATE_CHECKS, GateKind.SECURITY_REVIEW)

    with pytest.raises(GateWithoutChecks, match="'security_review' is checked but has no entry"):
        CheckActivities(sqlite_db, SandboxSettings(_env_file=None))
    with pytest.raises(ApplicationError, match="is checked but has no entry") as refused:
        await running.run_checks(ChecksInput(run_id="any", gate=GateKind.SECURITY_REVIEW))
    assert refused.value.type == "GateWithoutChecks" and refused.value.non_retryable


async def test_paths_leaving_the_workspace_are_refused(sqlite_db: Database) -> None:
    files = {"../escape.py": "x = 1\n", "/etc/cron.d/evil": "* * * * * root true\n"}
    report = await check(sqlite_db, files, "code_review")

    assert {f.file for f in high(report, "sandbox")} == set(files)


# --- containment: generated tests that misbehave ----------------------------------------

CONTAINMENT_TESTS = """\
import errno
import os
import socket

import pytest


def test_worker_secrets_are_not_visible() -> None:
    print(dict(os.environ))
    assert "ORCH_TEST_SECRET" not in os.environ
    assert "DATABASE_URL" not in os.environ
    allowed = {{"PATH", "HOME", "TMPDIR", "LANG", "PYTHONDONTWRITEBYTECODE"}}
    assert [name for name in os.environ if name not in allowed and not name.startswith("PYTEST_")] == []


def test_no_network() -> None:
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", {port}), timeout=2)


def test_a_1_gib_file_cannot_be_written() -> None:
    chunk = b"x" * (1 << 20)
    with pytest.raises(OSError) as failure, open("big.bin", "wb") as f:
        for _ in range(1024):
            f.write(chunk)
    assert failure.value.errno == errno.EFBIG
    assert os.path.getsize("big.bin") <= {file_size}
"""

FORK_BOMB_TESTS = """\
import os


def test_fork_bomb() -> None:
    while True:
        try:
            os.fork()
        except OSError:
            pass
"""


@pytest.fixture
def worker_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_TEST_SECRET", "s3cr3t")
    monkeypatch.setenv("DATABASE_URL", "postgresql://orch:hunter2@db.internal/orch")


async def test_generated_tests_cannot_see_secrets_reach_the_network_or_fill_the_disk(
    sqlite_db: Database, worker_secrets: None
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        tests = CONTAINMENT_TESTS.format(port=port, file_size=SandboxLimits().file_size_bytes)
        report = await check(sqlite_db, {"svc/tests/test_escape.py": tests}, "code_review")
        server.setblocking(False)
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing connected

    if report.network_isolated:
        assert (report.tests_passed, report.tests_failed) == (3, 0), report.findings
        assert report.blocking == []
    else:
        assert any(n.startswith("tests ran without network isolation") for n in report.notes)
        assert [f.message for f in report.blocking if "test_no_network" not in f.message] == []


async def test_a_fork_bomb_is_contained(sqlite_db: Database) -> None:
    report = await check(
        sqlite_db,
        {"bomb/tests/test_bomb.py": FORK_BOMB_TESTS},
        "code_review",
        test_timeout_seconds=6,
    )

    [killed] = high(report, "pytest")
    assert killed.message.startswith("test run killed: exceeded the 6 s wall-clock limit")
    assert killed.file == "bomb"
    subprocess.run(["true"], check=True)  # this process can still start processes
    assert _sandbox_processes() == []


def _sandbox_processes() -> list[int]:
    """Processes still running under a sandbox uid (only root runs sandboxes as other uids)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = entry.stat().st_uid
            except FileNotFoundError:
                continue
            if SANDBOX_UID_BASE <= uid < SANDBOX_UID_BASE + SANDBOX_UID_SPAN:
                found.append(int(entry.name))
    return found


# --- escapes: generated tests that attack the host ---------------------------------------


def _host_folder(name: str) -> Path:
    """A folder like a user's checkout: traversable by anyone, files readable by anyone."""
    folder = Path(tempfile.mkdtemp(prefix=f"orch-host-{name}-"))
    folder.chmod(0o755)
    return folder


async def test_a_sibling_folder_swapped_for_a_symlink_is_not_followed(sqlite_db: Database) -> None:
    host = _host_folder("target")
    (host / "owned-by-the-worker.txt").write_text("keep\n")
    before = {p.name: (p.stat().st_uid, p.read_text()) for p in host.iterdir()}
    swap = f"""\
import os
import shutil


def test_swap_the_sibling() -> None:
    shutil.rmtree("../b")
    os.symlink({str(host)!r}, "../b")
"""
    pwn = """\
def test_write_where_we_were_run() -> None:
    open("pwned.txt", "w").write("pwned")
"""
    try:
        report = await check(
            sqlite_db, {"a/tests/test_a.py": swap, "b/tests/test_b.py": pwn}, "code_review"
        )

        assert {p.name: (p.stat().st_uid, p.read_text()) for p in host.iterdir()} == before
        assert host.stat().st_uid == os.geteuid()
        [tampered] = [f for f in high(report, "sandbox") if f.rule == "workspace-tampered"]
        assert tampered.file == "b"
    finally:
        shutil.rmtree(host)


async def test_the_data_directory_cannot_be_read(sqlite_db: Database) -> None:
    checkout = _host_folder("checkout")
    data_dir = checkout / ".orchestrator"
    secret = "whsec_" + uuid.uuid4().hex
    try:
        platform_db = Database(f"sqlite+aiosqlite:///{data_dir / 'orchestrator.db'}")
        await platform_db.ensure_schema()
        async with platform_db.engine.begin() as conn:
            await conn.execute(text("CREATE TABLE leak (value TEXT)"))
            await conn.execute(text("INSERT INTO leak VALUES (:v)"), {"v": secret})
        await platform_db.dispose()
        assert data_dir.stat().st_mode & 0o777 == 0o700
        assert (data_dir / "orchestrator.db").stat().st_mode & 0o777 == 0o600

        leak = f"""\
def test_leak_the_database() -> None:
    data = open({str(data_dir / "orchestrator.db")!r}, "rb").read()
    assert False, data
"""
        report = await check(sqlite_db, {"svc/tests/test_leak.py": leak}, "code_review")

        [failure] = high(report, "pytest")
        assert secret not in failure.message
        assert "FileNotFoundError" in failure.message or "PermissionError" in failure.message
    finally:
        shutil.rmtree(checkout)


async def test_host_unix_sockets_cannot_be_reached(sqlite_db: Database) -> None:
    path = Path("/tmp") / f"orch-host-{uuid.uuid4().hex[:8]}.sock"
    abstract = f"\0orch-host-{uuid.uuid4().hex[:8]}"
    with (
        socket.socket(socket.AF_UNIX) as on_disk,
        socket.socket(socket.AF_UNIX) as in_abstract_namespace,
    ):
        on_disk.bind(str(path))
        path.chmod(0o777)
        on_disk.listen()
        in_abstract_namespace.bind(abstract)
        in_abstract_namespace.listen()
        tests = f"""\
import socket

import pytest


@pytest.mark.parametrize("address", [{str(path)!r}, {abstract!r}])
def test_connect(address: str) -> None:
    with socket.socket(socket.AF_UNIX) as client:
        client.connect(address)
"""
        try:
            report = await check(sqlite_db, {"svc/tests/test_socket.py": tests}, "code_review")
        finally:
            path.unlink()
        for listener in (on_disk, in_abstract_namespace):
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()  # nothing connected

    assert (report.tests_passed, report.tests_failed) == (0, 2)


async def test_nothing_is_left_in_the_hosts_tmp_places(sqlite_db: Database) -> None:
    name = f"orch-leftover-{uuid.uuid4().hex[:8]}"
    places = ["/tmp", "/var/tmp", "/dev/shm"]
    tests = f"""\
import os


def test_leave_files() -> None:
    for place in {places!r}:
        with open(os.path.join(place, {name!r}), "w") as f:
            f.write("left behind")
"""
    report = await check(sqlite_db, {"svc/tests/test_litter.py": tests}, "code_review")

    assert report.tests_passed == 1  # writing was allowed, in the sandbox's own places
    assert [p for p in places if (Path(p) / name).exists()] == []


async def test_memory_is_bounded_for_all_processes_together(sqlite_db: Database) -> None:
    # Each process stays far below its own 2 GiB address-space limit; together they need
    # 3 GiB, three times the sandbox's memory.
    tests = """\
import subprocess
import sys

HOG = "import time; block = b'x' * (1 << 30); time.sleep(2)"


def test_three_processes_of_one_gib() -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", HOG]) for _ in range(3)]
    assert [hog.wait() for hog in hogs] == [0, 0, 0]
"""
    report = await check(sqlite_db, {"svc/tests/test_hog.py": tests}, "code_review")

    assert report.tests_passed == 0
    [failure] = high(report, "pytest")
    assert "test_three_processes_of_one_gib" in failure.message or "memory" in failure.message
    subprocess.run(["true"], check=True)  # the worker is fine
