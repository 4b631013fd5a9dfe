"""Judging work: gates, validation of each task, and supervision by reviewer roles.

A gate runs the deterministic checks in the sandbox (when its kind is checked), lets a
reviewer agent judge, sends blocking findings back to the tasks that wrote the files,
and asks a human when revisions run out (or always, for `human_approval`). The validator
takes a second look at each task's work; reviewers named in `review_by` accept it or send
it back. The decisions themselves are plain functions in `workflows.gates` and
`workflows.validation`.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        GATE_VERDICTS_METRIC,
        REVISIONS_METRIC,
        RUN_CHECKS,
        VALIDATOR_ROLE,
        VERDICT_OUTPUT,
        AutoDecision,
        ChecksInput,
        ChecksReport,
        Decision,
        DecisionKind,
        EventType,
        Finding,
        GateKind,
        GateVerdict,
        TaskPlan,
        TaskState,
        TaskStatus,
    )
    from workflows import validation
    from workflows.dag import upstream_ids
    from workflows.gates import (
        POLICY_BY,
        gate_verdict,
        offending_tasks,
        render_findings,
        submitted_review,
    )

from workflows import own_checks
from workflows.agent_loop import AgentLoop
from workflows.humans import Humans
from workflows.run_context import RunContext

"""Checks beat every 5 s; a killed checks worker's work moves elsewhere within 20 s."""

GATE_OPTIONS = [
    DecisionKind.APPROVE.value,
    DecisionKind.REJECT.value,
    DecisionKind.REQUEST_CHANGES.value,
]

# workflow.patched ids: histories recorded before each change replay the old path.
PATCH_VALIDATION = "semantic-validation"
PATCH_REQUIRE_HUMAN = "require-human-signoff"


class Review:
    """Gates, validation and supervision of one run's work."""

    def __init__(self, run: RunContext, agents: AgentLoop, humans: Humans) -> None:
        self._run = run
        self._agents = agents
        self._humans = humans

    # --- gates ---------------------------------------------------------------------------

    async def run_gate(self, gate: TaskPlan, gate_state: TaskState) -> bool:
        """Check, review, revise until the gate passes; ask a human when revisions run out."""
        revisions = 0
        asks_human = gate.gate == GateKind.HUMAN_APPROVAL
        while True:
            round_ = len(gate_state.verdicts) + 1
            report = await self._checks(gate, round_)
            gate_state.check_seconds += report.seconds if report else 0.0
            gate_state.attempt, gate_state.next_turn = round_ - 1, 0
            gate_state.outputs.pop(VERDICT_OUTPUT, None)
            upstream = [
                self._run.state.task(t) for t in upstream_ids(self._run.plan.tasks, gate.id)
            ]
            if not await self._agents.work(
                gate, gate_state, feedback=_gate_feedback(report, upstream)
            ):
                return False
            verdict = gate_verdict(round_, report, submitted_review(gate_state.outputs))
            verdict.notes += own_checks.gate_notes(upstream)
            self._record_verdict(gate, gate_state, verdict)
            if verdict.passed and not asks_human and not _signoff(gate):
                return True
            if not verdict.passed and not asks_human and revisions < gate.max_revisions:
                revisions += 1
                await self._revise(gate, verdict.blocking or verdict.findings, verdict)
                continue
            decision = await self._ask_gate_decision(gate, gate_state, verdict)
            if decision.decision == DecisionKind.APPROVE:
                gate_state.verdicts.append(_approved(round_, decision))
                return True
            if decision.decision == DecisionKind.REJECT:
                gate_state.status = TaskStatus.FAILED
                gate_state.error = f"rejected by {decision.by}: {decision.comment}".rstrip(": ")
                return False
            comment = (
                [f"Requested by {decision.by}: {decision.comment}"] if decision.comment else []
            )
            await self._revise(gate, verdict.findings, verdict, extra=comment)

    async def _checks(self, gate: TaskPlan, round_: int) -> ChecksReport | None:
        if gate.gate is None or not gate.gate.checked:
            return None
        report: ChecksReport = await self._run.sandboxed(
            RUN_CHECKS,
            ChecksInput(
                run_id=self._run.plan.run_id,
                gate=gate.gate.value,
                test_command=self._run.test_command,
            ),
            result_type=ChecksReport,
            summary=f"{gate.id}: checks, round {round_}",
        )
        return report

    def _record_verdict(self, gate: TaskPlan, gate_state: TaskState, verdict: GateVerdict) -> None:
        gate_state.verdicts.append(verdict)
        workflow.metric_meter().create_counter(
            GATE_VERDICTS_METRIC, "Gate verdicts by gate and outcome."
        ).add(1, {"gate": _kind(gate), "outcome": "passed" if verdict.passed else "blocked"})
        self._run.emit(
            EventType.GATE_PASSED if verdict.passed else EventType.GATE_BLOCKED,
            gate.id,
            round=verdict.round,
            findings=len(verdict.findings),
            blocking=[f.message for f in verdict.blocking[:5]],
        )

    async def _revise(
        self,
        gate: TaskPlan,
        findings: list[Finding],
        verdict: GateVerdict,
        extra: list[str] | None = None,
    ) -> None:
        """Send the findings back to the tasks that wrote the offending files, in parallel."""
        workflow.metric_meter().create_counter(
            REVISIONS_METRIC, "Revision rounds a gate sent back to the implementers."
        ).add(1, {"gate": _kind(gate)})
        plan, state = self._run.plan, self._run.state
        files = {tid: {a.path for a in state.task(tid).artifacts} for tid in gate.revises}
        owned = {t.id: t.owns for t in plan.tasks if t.owns}
        targets = offending_tasks(findings, gate.revises, files, owned)
        feedback = "\n".join(
            [
                render_findings(
                    findings, heading=f"Gate {gate.id} blocked in round {verdict.round}:"
                ),
                *(extra or []),
                "Fix every finding above, rewrite the affected files, and keep the tests passing.",
            ]
        )
        by_id = {t.id: t for t in plan.tasks}
        await asyncio.gather(
            *(self._rerun(by_id[t], state.task(t), feedback) for t in targets if t in by_id)
        )

    async def _rerun(self, task: TaskPlan, task_state: TaskState, feedback: str) -> None:
        task_state.attempt += 1
        task_state.next_turn = 0
        task_state.status = TaskStatus.RUNNING
        if await self._agents.work(task, task_state, feedback=feedback):
            task_state.status = TaskStatus.COMPLETED
        self._run.emit_task_outcome(task_state)

    async def _ask_gate_decision(
        self, gate: TaskPlan, gate_state: TaskState, verdict: GateVerdict
    ) -> Decision:
        gate_state.status = TaskStatus.WAITING
        reason = (
            "human approval required"
            if gate.gate == GateKind.HUMAN_APPROVAL
            else "human sign-off required: the checks and the reviewer passed"
            if verdict.passed
            else f"still blocked after {gate.max_revisions} revisions: "
            + "; ".join(f.message for f in verdict.blocking[:3] or verdict.findings[:3])
        )
        answer = await self._humans.decision("gate", gate.id, reason, GATE_OPTIONS)
        gate_state.status = TaskStatus.RUNNING
        if answer.by == POLICY_BY and self._run.plan.escalation.auto_decision == AutoDecision.FAIL:
            self._run.fail_reason = f"gate {gate.id} waited past its escalation policy"
        return answer

    # --- validation and supervision ------------------------------------------------------

    async def validate(self, task: TaskPlan, task_state: TaskState) -> bool:
        """The validator checks the work; failed work goes round again, a bounded number of times.

        Validation never fails a task by itself: after the last rerun the task completes
        with the issues on its state. Only the validator's own failure (a dead letter that
        was aborted, a budget abort) or a failed rerun stops the task.
        """
        plan = self._run.plan
        if not validation.should_validate(task, plan) or not workflow.patched(PATCH_VALIDATION):
            return True
        round_ = 0
        while True:
            round_ += 1
            validator = validation.validator_task(task, task_state, plan)
            scratch = TaskState(id=validator.id, role=VALIDATOR_ROLE, attempt=round_ - 1)
            if not await self._agents.work(validator, scratch, upstream=list(task_state.artifacts)):
                if scratch.status == TaskStatus.SKIPPED:
                    task_state.validations.append(validation.skipped_result(scratch.summary))
                    return True
                task_state.status = TaskStatus.FAILED
                task_state.error = f"validation failed to run: {scratch.error}"
                return False
            _fold(task_state, scratch)
            result = validation.validation_outcome(scratch.outputs)
            task_state.validations.append(result)
            if result.passed:
                return True
            rerun = validation.should_rerun(round_, plan)
            self._run.emit(
                EventType.TASK_VALIDATION_FAILED,
                task.id,
                round=round_,
                issues=validation.event_issues(result),
                rerun=rerun,
            )
            if not rerun:
                return True
            task_state.attempt += 1
            task_state.next_turn = 0
            feedback = validation.rerun_feedback(result, round_)
            if not await self._agents.work(task, task_state, feedback=feedback):
                return False

    async def supervise(self, task: TaskPlan, task_state: TaskState) -> bool:
        """Each reviewer in `review_by`, in turn, accepts the work or sends it back."""
        for reviewer_role in task.review_by:
            for round_ in range(task.max_revisions + 1):
                reviewer = TaskPlan(
                    id=f"{task.id}.review-{reviewer_role}",
                    role=reviewer_role,
                    max_turns=task.max_turns,
                )
                scratch = TaskState(id=reviewer.id, role=reviewer_role, attempt=round_)
                upstream = [
                    *task_state.artifacts,
                    *(
                        ref
                        for tid in upstream_ids(self._run.plan.tasks, task.id)
                        for ref in self._run.state.task(tid).artifacts
                    ),
                ]
                if not await self._agents.work(
                    reviewer, scratch, review_of=task.id, upstream=upstream
                ):
                    return False
                _fold(task_state, scratch)
                review = submitted_review(scratch.outputs)
                if review is None or review.verdict == "pass":
                    break
                if round_ == task.max_revisions:
                    task_state.status = TaskStatus.FAILED
                    task_state.error = f"{reviewer_role} still blocks after {round_} revisions"
                    return False
                heading = f"{reviewer_role} sent it back: {review.summary}"
                await self._rerun(
                    task, task_state, render_findings(review.findings, heading=heading)
                )
                if task_state.status != TaskStatus.COMPLETED:
                    return False
                task_state.status = TaskStatus.RUNNING
        return True


def _checks_feedback(report: ChecksReport | None) -> str:
    """The tool checks' findings, as the reviewer agent reads them before judging."""
    if report is None:
        return ""
    return render_findings(
        report.findings,
        heading=f"Tool checks ({report.tests_passed} tests passed, {report.tests_failed} failed):",
    )


def _gate_feedback(report: ChecksReport | None, upstream: list[TaskState]) -> str:
    """What the reviewer reads before judging: the tool findings, and the tasks that
    completed with their own checks still failing (never hidden from the gate)."""
    parts = (_checks_feedback(report), own_checks.gate_context(upstream))
    return "\n\n".join(part for part in parts if part)


def _approved(round_: int, decision: Decision) -> GateVerdict:
    """The verdict a human's (or the policy's) approval adds to a gate's rounds."""
    return GateVerdict(
        round=round_,
        passed=True,
        decided_by=f"human:{decision.by}" if decision.by != POLICY_BY else POLICY_BY,
        summary=decision.comment,
    )


def _signoff(gate: TaskPlan) -> bool:
    """Whether a passing checked gate still waits for a human (`TaskPlan.require_human`)."""
    return gate.require_human and workflow.patched(PATCH_REQUIRE_HUMAN)


def _kind(gate: TaskPlan) -> str:
    """The gate's kind as a metric label."""
    return gate.gate.value if gate.gate else ""


def _fold(into: TaskState, reviewer: TaskState) -> None:
    """A supervisor's turns count toward the task it reviewed."""
    into.turns += reviewer.turns
    into.usage = into.usage + reviewer.usage
    into.cost_usd += reviewer.cost_usd
