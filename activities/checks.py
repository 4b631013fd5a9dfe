"""The checks activity: a gate's deterministic checks on a copy of a run's current files.

It fetches the run's files, runs the gate's checks (`checks.gates`) while heartbeating,
and returns the report. A sandbox session for generated code is opened only when code has
to run (or a note says why none works here). What an earlier check of the same files in
this run did is reused from the run's stored check results (`checks/cache.py`).
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from checks.cache import RunCheckCache
from checks.gates import CheckTimeouts, GateWithoutChecks, checks_for, run_gate
from checks.sandbox import SandboxLimits, SandboxSession, sandbox
from checks.workspace import check_scope
from core.contracts import REPOSITORY_TASK, RUN_CHECKS, ChecksInput, ChecksReport, GateKind
from core.infrastructure.settings import SandboxSettings
from core.persistence import storage
from core.persistence.db import Database


class CheckActivities:
    def __init__(
        self,
        db: Database,
        sandbox: SandboxSettings | None = None,
        *,
        timeouts: CheckTimeouts | None = None,
    ) -> None:
        settings = sandbox or SandboxSettings()
        self.db = db
        self.limits = SandboxLimits.from_settings(settings)
        self.sandbox_backend = settings.backend
        self.timeouts = timeouts or CheckTimeouts()
        # A checked gate kind without checks stops the worker here, before a gate could
        # pass unchecked.
        for gate in GateKind:
            if gate.checked:
                checks_for(gate)

    @activity.defn(name=RUN_CHECKS)
    async def run_checks(self, request: ChecksInput) -> ChecksReport:
        """Run the gate's checks on the run's current files; `paths` narrows lint and tests.

        `network_isolated` is True only when generated tests ran and every run of them had
        no network; the security review executes nothing, so it stays False there.
        """
        started = time.perf_counter()
        report = await self._checked(request)
        report.seconds = round(time.perf_counter() - started, 3)
        return report

    async def _checked(self, request: ChecksInput) -> ChecksReport:
        gate = _checked_gate(request.gate)
        latest = await storage.latest_artifacts(self.db, request.run_id)
        files = {a.path: a.content for a in latest}
        scope = check_scope(request.paths)
        if request.test_command and not request.paths:
            # A change run's gate judges the change: the files the run's agents wrote.
            scope = check_scope([a.path for a in latest if a.task_id != REPOSITORY_TASK])
        report = ChecksReport(gate=request.gate)
        if not files:
            report.notes.append("the run has no files: nothing was checked")
            return report
        with tempfile.TemporaryDirectory(prefix="orch-checks-") as scratch:
            await heartbeating(
                run_gate(
                    gate,
                    files,
                    scratch=Path(scratch),
                    sandbox=self._open_sandbox,
                    report=report,
                    timeouts=self.timeouts,
                    scope=scope,
                    test_command=request.test_command,
                    cache=RunCheckCache(self.db, request.run_id),
                )
            )
        return report

    def _open_sandbox(self) -> contextlib.AbstractContextManager[SandboxSession]:
        return sandbox(self.limits, backend=self.sandbox_backend)


def _checked_gate(name: str) -> GateKind:
    """The gate kind named, if it has checks; otherwise an error no retry can fix."""
    try:
        gate = GateKind(name)
    except ValueError:
        known = ", ".join(g.value for g in GateKind if g.checked)
        raise ApplicationError(
            f"unknown gate {name!r}; known: {known}", type="UnknownGate", non_retryable=True
        ) from None
    try:
        checks_for(gate)
    except GateWithoutChecks as exc:
        raise ApplicationError(str(exc), type="GateWithoutChecks", non_retryable=True) from None
    return gate
