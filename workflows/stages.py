"""Planning a stage: the planner's breakdown, checked, approved, and expanded into the DAG.

When the task a stage expands from ends its turn, its breakdown is checked; refused ones
go back to it with the problems (a bounded number of times), then the stage keeps its
template tasks. Where the stage asks for approval, a person approves, edits or rejects
the breakdown under `plan_approval`, with the same escalation as a gate. The planning
task completes only once its stage is settled, so nothing after it starts early. The
checks and the expansion are the plain functions of `workflows.expansion`.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        PLAN_APPROVAL_GATE,
        WORK_PACKAGES_OUTPUT,
        Decision,
        DecisionKind,
        EventType,
        ExpansionStatus,
        StageExpansion,
        StagePlan,
        TaskPlan,
        TaskState,
        TaskStatus,
        WorkBreakdown,
    )
    from workflows import expansion
    from workflows.gates import POLICY_BY

from workflows.agent_loop import AgentLoop
from workflows.humans import Humans
from workflows.run_context import RunContext

APPROVAL_OPTIONS = [
    DecisionKind.APPROVE.value,
    DecisionKind.EDIT.value,
    DecisionKind.REQUEST_CHANGES.value,
    DecisionKind.REJECT.value,
]


class Stages:
    """Expands the run's stages from their planners' work breakdowns."""

    def __init__(self, run: RunContext, agents: AgentLoop, humans: Humans) -> None:
        self._run = run
        self._agents = agents
        self._humans = humans
        humans.check_answers(PLAN_APPROVAL_GATE, self._edit_refusal)

    async def settle(self, task: TaskPlan, task_state: TaskState) -> bool:
        """After the planning task's work: expand its stage, or keep the template's tasks.

        Returns whether the planning task is done (False: it failed or was rejected).
        """
        stage = expansion.stage_planned_by(self._run.plan.stages, task.id)
        if stage is None:
            return True
        record = StageExpansion(stage=stage.id, source_task=task.id)
        self._run.state.expansions = [
            *(e for e in self._run.state.expansions if e.stage != stage.id),
            record,
        ]
        breakdown = await self._valid_breakdown(task, task_state, stage, record)
        started = [
            t for t in stage.tasks if self._run.statuses().get(t) not in (None, TaskStatus.PENDING)
        ]
        if started:  # a plan change let a fixed task start: it is not replaced mid-way
            record.problems = [f"task {started[0]!r} of the stage already started"]
            breakdown = None
        while breakdown is not None and stage.approval:
            decision = await self._approval(task_state, record, breakdown)
            if decision is None:
                return False
            if decision.decision == DecisionKind.REQUEST_CHANGES:
                feedback = f"{decision.by} asks for changes to the breakdown: {decision.comment}"
                if not await self._replan(task, task_state, feedback):
                    return False
                breakdown = await self._valid_breakdown(task, task_state, stage, record)
                continue
            if decision.decision == DecisionKind.EDIT and decision.breakdown is not None:
                breakdown = decision.breakdown
            record.decided_by = decision.by
            break
        if breakdown is None:
            self._fall_back(stage, record)
        else:
            self._expand(stage, record, breakdown)
        return True

    async def _valid_breakdown(
        self, task: TaskPlan, task_state: TaskState, stage: StagePlan, record: StageExpansion
    ) -> WorkBreakdown | None:
        """The planner's breakdown once it passes the checks; None when the rounds ran out."""
        round_ = 0
        while True:
            round_ += 1
            breakdown, problems = expansion.read_breakdown(task_state.outputs)
            if WORK_PACKAGES_OUTPUT not in task_state.outputs:
                # A planner that chose not to break the stage down keeps the template's tasks.
                record.problems = problems
                return None
            if breakdown is not None:
                record.rounds += 1
                record.breakdown = breakdown
                problems = expansion.check_breakdown(breakdown, stage, self._run.plan.tasks)
            record.problems = problems
            if not problems:
                return breakdown
            retry = round_ <= stage.max_plan_rounds
            self._run.emit(
                EventType.PLAN_REFUSED, task.id, round=round_, problems=problems[:5], retry=retry
            )
            if not retry:
                return None
            feedback = expansion.render_problems(problems, round_)
            if not await self._replan(task, task_state, feedback):
                return None

    async def _replan(self, task: TaskPlan, task_state: TaskState, feedback: str) -> bool:
        task_state.attempt += 1
        task_state.next_turn = 0
        task_state.outputs.pop(WORK_PACKAGES_OUTPUT, None)
        task_state.status = TaskStatus.RUNNING
        return await self._agents.work(task, task_state, feedback=feedback)

    async def _approval(
        self, task_state: TaskState, record: StageExpansion, breakdown: WorkBreakdown
    ) -> Decision | None:
        """A person's answer on the breakdown; None when it was rejected."""
        record.status = ExpansionStatus.AWAITING_APPROVAL
        task_state.status = TaskStatus.WAITING
        reason = (
            f"approve the work breakdown of stage {record.stage}: "
            f"{len(breakdown.packages)} packages ({', '.join(p.id for p in breakdown.packages)})"
        )
        answer = await self._humans.decision("gate", PLAN_APPROVAL_GATE, reason, APPROVAL_OPTIONS)
        task_state.status = TaskStatus.RUNNING
        if answer.decision != DecisionKind.REJECT:
            return answer
        record.status = ExpansionStatus.REJECTED
        record.decided_by = answer.by
        task_state.status = TaskStatus.FAILED
        task_state.error = f"work breakdown rejected by {answer.by}: {answer.comment}".rstrip(": ")
        if answer.by == POLICY_BY:
            self._run.fail_reason = "the work breakdown waited past its escalation policy"
        return None

    def _edit_refusal(self, answer: Decision) -> str | None:
        """Why an `edit` cannot be taken: no breakdown, or one that fails the checks."""
        if answer.decision != DecisionKind.EDIT:
            return None
        if answer.breakdown is None:
            return "an edit of plan_approval needs the edited breakdown in 'breakdown'"
        waiting = [
            e for e in self._run.state.expansions if e.status == ExpansionStatus.AWAITING_APPROVAL
        ]
        stage = next(
            (s for s in self._run.plan.stages if waiting and s.id == waiting[0].stage), None
        )
        if stage is None:
            return None
        problems = expansion.check_breakdown(answer.breakdown, stage, self._run.plan.tasks)
        return "the edited breakdown is refused: " + "; ".join(problems) if problems else None

    def _expand(self, stage: StagePlan, record: StageExpansion, breakdown: WorkBreakdown) -> None:
        plan, state = self._run.plan, self._run.state
        plan.tasks = expansion.expand_stage(plan.tasks, stage, breakdown)
        state.tasks = expansion.expand_states(state.tasks, stage, breakdown)
        record.breakdown = breakdown
        record.status = ExpansionStatus.EXPANDED
        record.tasks = [p.id for p in breakdown.packages]
        self._run.emit(
            EventType.STAGE_EXPANDED,
            record.source_task,
            stage=stage.id,
            packages=record.tasks,
            decided_by=record.decided_by,
        )

    def _fall_back(self, stage: StagePlan, record: StageExpansion) -> None:
        record.status = ExpansionStatus.FALLBACK
        record.tasks = list(stage.tasks)
        self._run.emit(
            EventType.STAGE_FALLBACK,
            record.source_task,
            stage=stage.id,
            tasks=record.tasks,
            problems=record.problems[:5],
        )
