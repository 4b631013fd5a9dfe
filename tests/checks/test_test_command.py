"""A change run's repository test command in the sandbox: its exit code is the verdict."""

from __future__ import annotations

from checks.sandbox import sandbox
from checks.test_command import run_test_command
from core.contracts import ChecksReport, Severity


async def test_a_passing_command_is_a_note_and_a_failing_one_blocks_with_its_output() -> None:
    with sandbox() as session:
        (session.workspace / "Makefile").write_text("test:\n\t@echo 'ran: 2 passed'\n")
        passed = ChecksReport(gate="code_review")
        await run_test_command("make test", session, passed, timeout_seconds=30)
        assert passed.findings == []
        assert passed.notes == ["the repository's test command `make test` passed"]

        failed = ChecksReport(gate="code_review")
        await run_test_command("echo 'E assert 1 == 2'; exit 3", session, failed, 30)
        [finding] = failed.findings
        assert finding.severity == Severity.HIGH and finding.rule == "repository-tests"
        assert "exit code 3" in finding.message and "assert 1 == 2" in finding.message

        hung = ChecksReport(gate="code_review")
        await run_test_command("sleep 30", session, hung, timeout_seconds=1)
        assert "killed" in hung.findings[0].message


async def test_without_a_sandbox_nothing_runs_and_the_report_says_so() -> None:
    report = ChecksReport(gate="security_review")
    await run_test_command("make test", None, report, timeout_seconds=30)
    assert report.findings == [] and "was not run: no sandbox" in report.notes[0]
