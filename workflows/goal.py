"""`GoalWorkflow`: one goal, run as a DAG of agent tasks with all the parallelism it allows.

A task is a coroutine inside the workflow: agent turns (model call, then that turn's
tool calls) until the agent ends its turn. Gates check the workspace with tools, let a
reviewer agent judge, send blocking findings back to the implementers, and ask a human
when revisions run out. A task whose model call fails for good is dead-lettered and the
run waits for `resolve_task` while independent work goes on.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        BUDGET_EXCEEDED_ERROR,
        BUDGET_GATE,
        CALL_MODEL,
        CHECKS_QUEUE,
        DELIVER_WEBHOOKS,
        NOTIFY,
        RECORD_RUN_FINISHED,
        RECORD_RUN_STARTED,
        RUN_CHECKS,
        RUN_TOOL_CALLS,
        SEARCH_ATTRIBUTE_RUN_STATUS,
        SEARCH_ATTRIBUTE_TEMPLATE,
        SEARCH_ATTRIBUTE_TENANT,
        TASK_QUEUE,
        VALIDATOR_ROLE,
        VERDICT_OUTPUT,
        WEBHOOK_EVENT_TYPES,
        ArtifactRef,
        AutoDecision,
        ChecksInput,
        ChecksReport,
        Decision,
        DecisionKind,
        EventType,
        FinalizeRunInput,
        GateVerdict,
        ModelCallInput,
        ModelCallResult,
        NewTask,
        Notification,
        PendingDecision,
        RunEvent,
        RunPlan,
        RunState,
        RunStatus,
        TaskModification,
        TaskPlan,
        TaskRemoval,
        TaskResolution,
        TaskState,
        TaskStatus,
        ToolCallsInput,
        ToolCallsResult,
        TurnKey,
        WebhookDeliveryInput,
        agent_queue,
    )
    from core.infrastructure.metrics import GATE_VERDICTS, REVISIONS
    from workflows import changes, validation
    from workflows import notes as agent_notes
    from workflows.dag import blocked_tasks, ready_tasks, should_run, upstream_ids
    from workflows.gates import (
        HUMAN_APPROVAL,
        POLICY_BY,
        automatic_budget_decision,
        automatic_decision,
        automatic_resolution,
        escalation_tiers,
        gate_verdict,
        offending_tasks,
        render_findings,
        submitted_review,
        tier_channels,
    )

RUN_STATUS = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_RUN_STATUS)
TEMPLATE = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_TEMPLATE)
TENANT = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_TENANT)

STORAGE_TIMEOUT = timedelta(seconds=60)
STORAGE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))
CHECKS_TIMEOUT = timedelta(minutes=15)
CHECKS_HEARTBEAT_TIMEOUT = timedelta(seconds=20)
"""Checks beat every 5 s; a killed checks worker's work moves elsewhere within 20 s."""
NOTIFY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=20)
WEBHOOK_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=2))
DELIVERY_GIVE_UP = timedelta(minutes=15)
"""The run ends only after its notifications and webhooks: a dead receiver holds it this long
at most, instead of for hours of retries."""

GATE_OPTIONS = [
    DecisionKind.APPROVE.value,
    DecisionKind.REJECT.value,
    DecisionKind.REQUEST_CHANGES.value,
]

# workflow.patched ids: histories recorded before each change replay the old path.
PATCH_WEBHOOKS = "webhook-deliveries"
PATCH_NOTES = "agent-notes"
PATCH_VALIDATION = "semantic-validation"
PATCH_NOTIFY_GIVE_UP = "notification-give-up"


class MaxTurnsExceeded(Exception):
    pass


class BudgetAborted(Exception):
    """A human (or the escalation policy) chose to stop the run when its budget was spent."""


@workflow.defn
class GoalWorkflow:
    def __init__(self) -> None:
        self._state: RunState | None = None
        self._plan: RunPlan | None = None
        self._pending: dict[str, PendingDecision] = {}
        self._answers: dict[str, Decision | TaskResolution] = {}
        self._plan_changed = False
        self._fail_reason: str | None = None
        self._side_effects: list[asyncio.Task[None]] = []
        """Notifications and webhook deliveries in flight; the run ends only after them."""
        self._budget_answer: asyncio.Task[Decision | TaskResolution] | None = None

    # --- what a client can ask and say ---------------------------------------------------

    @workflow.query
    def status(self) -> RunState | None:
        return self._state

    @workflow.query
    def pending_decisions(self) -> list[PendingDecision]:
        return list(self._pending.values())

    @workflow.query
    def events(self, after: int = 0) -> list[RunEvent]:
        """Events with `seq` greater than `after`: what a reconnecting client missed."""
        return [e for e in self._state.events if e.seq > after] if self._state else []

    @workflow.signal
    def decide(self, decision: Decision) -> None:
        self._answer(decision.gate, "budget" if decision.gate == BUDGET_GATE else "gate", decision)

    @workflow.signal
    def resolve_task(self, resolution: TaskResolution) -> None:
        self._answer(resolution.task, "dead_letter", resolution)

    def _answer(self, key: str, kind: str, answer: Decision | TaskResolution) -> None:
        pending = self._pending.get(key)
        if pending is None or pending.kind != kind:
            # Nothing waits for it: say so in the log, never let a stray answer count later.
            workflow.logger.warning("ignored %s for %r: nothing waits for it", kind, key)
            return
        choice = answer.decision.value if isinstance(answer, Decision) else answer.action
        if choice not in pending.options:
            workflow.logger.warning(
                "ignored %r for %r: options are %s", choice, key, pending.options
            )
            return
        self._answers[key] = answer

    @workflow.update
    async def add_task(self, new: NewTask) -> TaskState:
        plan, state = self._require_plan(), self._require_state()
        plan.tasks = changes.apply_add(plan.tasks, new)
        state.tasks.append(TaskState(id=new.id, role=new.role))
        self._plan_changed = True
        return state.task(new.id)

    @add_task.validator
    def _check_add(self, new: NewTask) -> None:
        plan = self._require_plan()
        _reject(changes.check_add(plan.tasks, self._statuses(), plan.roles, new))

    @workflow.update
    async def remove_task(self, removal: TaskRemoval) -> None:
        plan, state = self._require_plan(), self._require_state()
        plan.tasks = changes.apply_remove(plan.tasks, removal)
        state.tasks = [t for t in state.tasks if t.id != removal.task]
        self._plan_changed = True

    @remove_task.validator
    def _check_remove(self, removal: TaskRemoval) -> None:
        _reject(changes.check_remove(self._statuses(), removal))

    @workflow.update
    async def modify_task(self, change: TaskModification) -> TaskState:
        plan, state = self._require_plan(), self._require_state()
        plan.tasks = changes.apply_modify(plan.tasks, change)
        if change.role is not None:
            state.task(change.task).role = change.role
        self._plan_changed = True
        return state.task(change.task)

    @modify_task.validator
    def _check_modify(self, change: TaskModification) -> None:
        plan = self._require_plan()
        _reject(changes.check_modify(plan.tasks, self._statuses(), plan.roles, change))

    # --- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, plan: RunPlan) -> RunState:
        self._plan = plan
        if plan.resume is not None:
            self._state = state = plan.resume
        else:
            self._state = state = RunState(
                run_id=plan.run_id,
                goal=plan.goal,
                template=plan.template,
                tasks=[TaskState(id=t.id, role=t.role) for t in plan.tasks],
            )
            workflow.upsert_search_attributes(
                [
                    RUN_STATUS.value_set(RunStatus.RUNNING.value),
                    TEMPLATE.value_set(plan.template),
                    TENANT.value_set(plan.tenant),
                ]
            )
            await self._storage(RECORD_RUN_STARTED, plan)
            self._emit(EventType.RUN_STARTED, goal=plan.goal, template=plan.template)

        running: dict[str, asyncio.Task[None]] = {}
        try:
            await self._run_dag(running)
        except asyncio.CancelledError:
            await self._record_cancellation(running)
            raise

        state.status = self._final_status()
        workflow.upsert_search_attributes([RUN_STATUS.value_set(state.status.value)])
        finished = EventType.RUN_COMPLETED
        if state.status != RunStatus.COMPLETED:
            finished = EventType.RUN_FAILED
        self._emit(finished, error=state.error)
        if workflow.patched(PATCH_WEBHOOKS):
            await asyncio.gather(*self._side_effects)
        await self._storage(
            RECORD_RUN_FINISHED,
            FinalizeRunInput(state=state, workflow_id=workflow.info().workflow_id),
        )
        return state

    async def _run_dag(self, running: dict[str, asyncio.Task[None]]) -> None:
        """Start what is ready, react to whatever finishes, until nothing can run."""
        plan, state = self._require_plan(), self._require_state()
        while True:
            # Near the history limit, start nothing new; once in-flight tasks finish, carry
            # the state into a fresh run.
            draining = self._history_is_long()
            if not draining and self._fail_reason is None:
                self._start_ready_tasks(running)
            if not running:
                if draining and any(t.status == TaskStatus.PENDING for t in state.tasks):
                    workflow.continue_as_new(plan.model_copy(update={"resume": state}))
                return
            await workflow.wait_condition(
                lambda: self._plan_changed or any(t.done() for t in running.values())
            )
            self._plan_changed = False
            for task_id in [tid for tid, t in running.items() if t.done()]:
                running.pop(task_id).result()  # re-raise a bug instead of hiding it

    async def _record_cancellation(self, running: dict[str, asyncio.Task[None]]) -> None:
        """A cancelled run stops its tasks and still records how far it got."""
        state = self._require_state()
        for task in running.values():
            task.cancel()
        for task_state in state.tasks:
            if task_state.status not in (TaskStatus.COMPLETED, TaskStatus.SKIPPED):
                task_state.status = TaskStatus.FAILED
                task_state.error = task_state.error or "not finished: the run was cancelled"
        state.status, state.error = RunStatus.CANCELLED, "cancelled"
        workflow.upsert_search_attributes([RUN_STATUS.value_set(state.status.value)])
        self._emit(EventType.RUN_CANCELLED)
        await self._storage(
            RECORD_RUN_FINISHED,
            FinalizeRunInput(state=state, workflow_id=workflow.info().workflow_id),
        )

    def _final_status(self) -> RunStatus:
        state = self._require_state()
        for task in state.tasks:
            if task.status == TaskStatus.PENDING:
                task.status = TaskStatus.FAILED
                task.error = f"not run: {self._fail_reason or 'an upstream task failed'}"
        failed = [t.id for t in state.tasks if t.status == TaskStatus.FAILED]
        if self._fail_reason:
            state.error = self._fail_reason
            return RunStatus.FAILED
        if failed:
            state.error = f"tasks failed: {', '.join(failed)}"
            return RunStatus.FAILED
        return RunStatus.COMPLETED

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        limit = self._require_plan().history_event_limit
        return limit is not None and info.get_current_history_length() >= limit

    def _start_ready_tasks(self, running: dict[str, asyncio.Task[None]]) -> None:
        """Start every task whose dependencies are done; settle skipped and blocked ones first."""
        plan, state = self._require_plan(), self._require_state()
        while True:
            for task in blocked_tasks(plan.tasks, self._statuses()):
                blocked = state.task(task.id)
                blocked.status = TaskStatus.FAILED
                blocked.error = "not run: an upstream task failed"
                self._emit(EventType.TASK_FAILED, task.id, error=blocked.error)
            outputs = {t.id: t.outputs for t in state.tasks}
            settled_any = False
            for task in ready_tasks(plan.tasks, self._statuses()):
                if should_run(task, outputs):
                    state.task(task.id).status = TaskStatus.RUNNING
                    self._emit(EventType.TASK_STARTED, task.id, role=task.role)
                    running[task.id] = asyncio.create_task(self._run_task(task))
                else:
                    state.task(task.id).status = TaskStatus.SKIPPED
                    state.task(task.id).summary = f"skipped: condition {task.when!r} is false"
                    self._emit(EventType.TASK_SKIPPED, task.id, reason=state.task(task.id).summary)
                    settled_any = True
            if not settled_any:
                return

    async def _run_task(self, task: TaskPlan) -> None:
        task_state = self._require_state().task(task.id)
        if task.gate:
            done = await self._run_gate(task, task_state)
        else:
            done = (
                await self._work(task, task_state)
                and await self._validate(task, task_state)
                and await self._supervise(task, task_state)
            )
        if done:
            task_state.status = TaskStatus.COMPLETED
        self._emit_task_outcome(task_state)

    def _emit_task_outcome(self, task_state: TaskState) -> None:
        if task_state.status == TaskStatus.COMPLETED:
            self._emit(
                EventType.TASK_COMPLETED,
                task_state.id,
                role=task_state.role,
                turns=task_state.turns,
                task_cost_usd=task_state.cost_usd,
                artifacts=[ref.path for ref in task_state.artifacts],
            )
        elif task_state.status == TaskStatus.SKIPPED:
            self._emit(EventType.TASK_SKIPPED, task_state.id, reason=task_state.summary)
        else:
            self._emit(EventType.TASK_FAILED, task_state.id, error=task_state.error)

    # --- one task's work, with its dead letter -------------------------------------------

    async def _work(
        self,
        task: TaskPlan,
        task_state: TaskState,
        *,
        feedback: str = "",
        review_of: str | None = None,
        upstream: list[ArtifactRef] | None = None,
    ) -> bool:
        """Run the agent; if its model calls fail for good, wait for `resolve_task`.

        Returns whether the task's work is done (False: skipped or aborted).
        """
        while True:
            try:
                await self._agent_loop(task, task_state, feedback, review_of, upstream)
                return True
            except BudgetAborted as exc:
                task_state.status = TaskStatus.FAILED
                task_state.error = str(exc)
                self._fail_reason = self._fail_reason or str(exc)
                return False
            except (ActivityError, MaxTurnsExceeded) as exc:
                task_state.status = TaskStatus.DEAD_LETTERED
                task_state.error = _describe_failure(exc)
                self._emit(EventType.TASK_DEAD_LETTERED, task.id, error=task_state.error)
            answer = await self._ask_human(
                "dead_letter", task.id, task_state.error or "failed", ["retry", "skip", "abort"]
            )
            assert isinstance(answer, TaskResolution)
            if answer.action == "retry":
                task_state.status, task_state.error = TaskStatus.RUNNING, None
                continue
            task_state.summary = f"{answer.action} by {answer.by}: {answer.comment}".strip(": ")
            if answer.action == "skip":
                task_state.status = TaskStatus.SKIPPED
            else:
                task_state.status = TaskStatus.FAILED
                task_state.error = f"aborted by {answer.by}: {task_state.error}"
                if answer.by == POLICY_BY:
                    self._fail_reason = f"task {task.id} dead-lettered and nobody resolved it"
            return False

    async def _agent_loop(
        self,
        task: TaskPlan,
        task_state: TaskState,
        feedback: str,
        review_of: str | None,
        upstream: list[ArtifactRef] | None,
    ) -> None:
        """Model call, then that turn's tool calls, until the agent ends its turn."""
        plan, state = self._require_plan(), self._require_state()
        if upstream is None:
            upstream = [
                ref
                for tid in upstream_ids(plan.tasks, task.id)
                for ref in state.task(tid).artifacts
            ]
        description = "\n\n".join(p for p in (task.description, task.prompt_addition) if p)
        round_ = f", attempt {task_state.attempt + 1}" if task_state.attempt else ""
        notes_on = workflow.patched(PATCH_NOTES)
        peers = agent_notes.peers(plan.tasks, task.id) if notes_on else {}
        while task_state.next_turn < task.max_turns:
            turn = task_state.next_turn
            if notes_on and turn == 0:
                task_state.delivered_notes = {}  # a new attempt is a new conversation
            key = TurnKey(
                run_id=plan.run_id,
                workflow_id=workflow.info().workflow_id,
                execution_id=workflow.info().run_id,
                task_id=task.id,
                attempt=task_state.attempt,
                turn=turn,
            )
            label = f"{task.id} ({task.role}){round_}"
            call = await self._call_model(
                ModelCallInput(
                    key=key,
                    role=task.role,
                    goal=plan.goal,
                    description=description,
                    feedback=feedback,
                    review_of=review_of,
                    model=task.model or plan.model,
                    upstream=upstream,
                    tenant=plan.tenant,
                    response_cache=plan.response_cache,
                    notes=agent_notes.deliver(
                        state.notes,
                        task_id=task.id,
                        role=task.role,
                        turn=turn,
                        delivered=task_state.delivered_notes,
                    )
                    if notes_on
                    else [],
                    peers=peers,
                ),
                summary=f"{label}: turn {turn + 1}",
            )
            self._account(task_state, call)
            if call.tool_calls:
                tools = await self._storage(
                    RUN_TOOL_CALLS,
                    ToolCallsInput(
                        key=key,
                        role=task.role,
                        model=call.model,
                        review_of=review_of,
                        recipients=agent_notes.recipients(plan.tasks) if notes_on else [],
                    ),
                    result_type=ToolCallsResult,
                    summary=f"{label}: tools of turn {turn + 1}",
                )
                task_state.artifacts = merge_artifacts(task_state.artifacts, tools.written)
                task_state.outputs.update(tools.outputs)
                if notes_on:
                    await self._take_notes(task, task_state, turn, tools)
            task_state.next_turn = turn + 1
            if call.stop_reason != "tool_use":
                task_state.summary = call.text
                return
        raise MaxTurnsExceeded(f"{task.id} did not finish within {task.max_turns} turns")

    async def _take_notes(
        self, task: TaskPlan, task_state: TaskState, turn: int, tools: ToolCallsResult
    ) -> None:
        """Post the turn's notes to the run's state; hold the agent if it waits for one."""
        state = self._require_state()
        posted = agent_notes.posted(
            tools.notes,
            after=state.notes,
            from_task=task.id,
            from_role=task.role,
            turn=turn,
            at=workflow.now(),
        )
        for note in posted:
            state.notes.append(note)
            self._emit(
                EventType.NOTE_POSTED, task.id, seq=note.seq, to=note.to, subject=note.subject
            )
        wait = tools.wait_for_note
        if wait is None:
            return

        def may_go_on() -> bool:
            return agent_notes.may_go_on(
                state.notes,
                state.tasks,
                task_id=task.id,
                role=task.role,
                delivered=task_state.delivered_notes,
                sender=wait.sender,
            )

        if may_go_on():
            return
        try:
            await workflow.wait_condition(may_go_on, timeout=wait.timeout_seconds)
        except TimeoutError:
            workflow.logger.info("%s waited %ss for a note in vain", task.id, wait.timeout_seconds)

    async def _call_model(self, call: ModelCallInput, summary: str) -> ModelCallResult:
        """One model call; when a budget is spent, pause for `raise` or `abort` and go on."""
        plan = self._require_plan()
        while True:
            call.budget_tokens, call.budget_usd = plan.budget_tokens, plan.budget_usd
            try:
                result: ModelCallResult = await workflow.execute_activity(
                    CALL_MODEL,
                    call,
                    result_type=ModelCallResult,
                    task_queue=agent_queue(call.role),
                    start_to_close_timeout=timedelta(seconds=plan.model_call_timeout_seconds),
                    heartbeat_timeout=timedelta(seconds=plan.model_heartbeat_timeout_seconds),
                    retry_policy=RetryPolicy(
                        maximum_attempts=plan.model_max_attempts,
                        maximum_interval=timedelta(seconds=60),
                    ),
                    summary=summary,
                )
                return result
            except ActivityError as exc:
                if not isinstance(exc.cause, ApplicationError) or (
                    exc.cause.type != BUDGET_EXCEEDED_ERROR
                ):
                    raise
                await self._budget_pause(exc.cause.message)

    async def _budget_pause(self, reason: str) -> None:
        """Every task that hits the spent budget waits for the same one decision."""
        if self._budget_answer is None or self._budget_answer.done():
            self._emit(EventType.BUDGET_EXCEEDED, reason=reason)
            self._budget_answer = asyncio.create_task(
                self._ask_human("budget", BUDGET_GATE, reason, ["raise", "abort"])
            )
        answer = await self._budget_answer
        assert isinstance(answer, Decision)
        if answer.decision != DecisionKind.RAISE:
            raise BudgetAborted(f"budget spent ({reason}); aborted by {answer.by}")
        plan = self._require_plan()
        if answer.budget_tokens is not None:
            plan.budget_tokens = answer.budget_tokens
        if answer.budget_usd is not None:
            plan.budget_usd = answer.budget_usd

    # --- gates ---------------------------------------------------------------------------

    async def _run_gate(self, gate: TaskPlan, gate_state: TaskState) -> bool:
        """Check, review, revise until the gate passes; ask a human when revisions run out."""
        revisions = 0
        while True:
            round_ = len(gate_state.verdicts) + 1
            report = await self._checks(gate, round_)
            gate_state.attempt, gate_state.next_turn = round_ - 1, 0
            gate_state.outputs.pop(VERDICT_OUTPUT, None)
            feedback = ""
            if report is not None:
                feedback = render_findings(
                    report.findings,
                    heading=f"Tool checks ({report.tests_passed} tests passed, "
                    f"{report.tests_failed} failed):",
                )
            if not await self._work(gate, gate_state, feedback=feedback):
                return False
            verdict = gate_verdict(round_, report, submitted_review(gate_state.outputs))
            gate_state.verdicts.append(verdict)
            workflow.metric_meter().create_counter(
                GATE_VERDICTS, "Gate verdicts by gate and outcome."
            ).add(
                1, {"gate": gate.gate or "", "outcome": "passed" if verdict.passed else "blocked"}
            )
            self._emit(
                EventType.GATE_PASSED if verdict.passed else EventType.GATE_BLOCKED,
                gate.id,
                round=round_,
                findings=len(verdict.findings),
                blocking=[f.message for f in verdict.blocking[:5]],
            )
            if verdict.passed and gate.gate != HUMAN_APPROVAL:
                return True
            if gate.gate != HUMAN_APPROVAL and revisions < gate.max_revisions:
                revisions += 1
                await self._revise(gate, verdict.blocking or verdict.findings, verdict)
                continue
            decision = await self._ask_gate_decision(gate, gate_state, verdict)
            if decision.decision == DecisionKind.APPROVE:
                gate_state.verdicts.append(
                    GateVerdict(
                        round=round_,
                        passed=True,
                        decided_by=f"human:{decision.by}"
                        if decision.by != POLICY_BY
                        else POLICY_BY,
                        summary=decision.comment,
                    )
                )
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
        if gate.gate not in ("code_review", "security_review"):
            return None
        report: ChecksReport = await workflow.execute_activity(
            RUN_CHECKS,
            ChecksInput(run_id=self._require_plan().run_id, gate=gate.gate),
            result_type=ChecksReport,
            task_queue=CHECKS_QUEUE,
            start_to_close_timeout=CHECKS_TIMEOUT,
            heartbeat_timeout=CHECKS_HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary=f"{gate.id}: checks, round {round_}",
        )
        return report

    async def _revise(
        self,
        gate: TaskPlan,
        findings: list[Any],
        verdict: GateVerdict,
        extra: list[str] | None = None,
    ) -> None:
        """Send the findings back to the tasks that wrote the offending files, in parallel."""
        workflow.metric_meter().create_counter(
            REVISIONS, "Revision rounds a gate sent back to the implementers."
        ).add(1, {"gate": gate.gate or ""})
        plan, state = self._require_plan(), self._require_state()
        files = {tid: {a.path for a in state.task(tid).artifacts} for tid in gate.revises}
        targets = offending_tasks(findings, gate.revises, files)
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
        if await self._work(task, task_state, feedback=feedback):
            task_state.status = TaskStatus.COMPLETED
        self._emit_task_outcome(task_state)

    async def _ask_gate_decision(
        self, gate: TaskPlan, gate_state: TaskState, verdict: GateVerdict
    ) -> Decision:
        gate_state.status = TaskStatus.WAITING
        reason = (
            "human approval required"
            if gate.gate == HUMAN_APPROVAL
            else f"still blocked after {gate.max_revisions} revisions: "
            + "; ".join(f.message for f in verdict.blocking[:3] or verdict.findings[:3])
        )
        answer = await self._ask_human("gate", gate.id, reason, GATE_OPTIONS)
        gate_state.status = TaskStatus.RUNNING
        assert isinstance(answer, Decision)
        policy = self._require_plan().escalation
        if answer.by == POLICY_BY and policy.auto_decision == AutoDecision.FAIL:
            self._fail_reason = f"gate {gate.id} waited past its escalation policy"
        return answer

    async def _validate(self, task: TaskPlan, task_state: TaskState) -> bool:
        """The validator checks the work; failed work goes round again, a bounded number of times.

        Validation never fails a task by itself: after the last rerun the task completes
        with the issues on its state. Only the validator's own failure (a dead letter that
        was aborted, a budget abort) or a failed rerun stops the task.
        """
        plan = self._require_plan()
        if not validation.should_validate(task, plan) or not workflow.patched(PATCH_VALIDATION):
            return True
        round_ = 0
        while True:
            round_ += 1
            validator = validation.validator_task(task, task_state, plan)
            scratch = TaskState(id=validator.id, role=VALIDATOR_ROLE, attempt=round_ - 1)
            if not await self._work(validator, scratch, upstream=list(task_state.artifacts)):
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
            self._emit(
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
            if not await self._work(task, task_state, feedback=feedback):
                return False

    async def _supervise(self, task: TaskPlan, task_state: TaskState) -> bool:
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
                        for tid in upstream_ids(self._require_plan().tasks, task.id)
                        for ref in self._require_state().task(tid).artifacts
                    ),
                ]
                if not await self._work(reviewer, scratch, review_of=task.id, upstream=upstream):
                    return False
                _fold(task_state, scratch)
                review = submitted_review(scratch.outputs)
                if review is None or review.verdict == "pass":
                    break
                if round_ == task.max_revisions:
                    task_state.status = TaskStatus.FAILED
                    task_state.error = f"{reviewer_role} still blocks after {round_} revisions"
                    return False
                await self._rerun(
                    task,
                    task_state,
                    render_findings(
                        review.findings, heading=f"{reviewer_role} sent it back: {review.summary}"
                    ),
                )
                if task_state.status != TaskStatus.COMPLETED:
                    return False
                task_state.status = TaskStatus.RUNNING
        return True

    # --- asking humans, with escalation --------------------------------------------------

    async def _ask_human(
        self, kind: str, key: str, reason: str, options: list[str]
    ) -> Decision | TaskResolution:
        """Wait for an answer, escalating by the run's policy; tier 3 decides by itself."""
        policy = self._require_plan().escalation
        pending = PendingDecision(
            kind=kind,
            key=key,
            reason=reason,
            since=workflow.now(),
            options=options,
        )
        self._pending[key] = pending
        self._answers.pop(key, None)
        self._publish_run_status()
        self._emit(EventType.DECISION_REQUESTED, key, kind=kind, reason=reason, options=options)
        waited = 0.0
        for tier, at in escalation_tiers(policy):
            if await self._answer_within(key, at - waited):
                break
            waited = at
            pending.tier = tier
            if tier < 3:
                self._notify(tier, pending)
            else:
                self._answers[key] = _automatic_answer(kind, policy, key)
        answer = self._answers.pop(key)
        del self._pending[key]
        self._publish_run_status()
        choice = answer.decision.value if isinstance(answer, Decision) else answer.action
        self._emit(
            EventType.DECISION_MADE, key, decision=choice, by=answer.by, comment=answer.comment
        )
        return answer

    async def _answer_within(self, key: str, seconds: float) -> bool:
        if seconds <= 0:
            return key in self._answers
        try:
            await workflow.wait_condition(lambda: key in self._answers, timeout=seconds)
        except TimeoutError:
            return False
        return True

    def _notify(self, tier: int, pending: PendingDecision) -> None:
        plan = self._require_plan()
        what = {"gate": "gate", "budget": "spent budget of", "dead_letter": "dead-lettered task"}[
            pending.kind
        ]
        for channel, target in tier_channels(plan.escalation, tier):
            notification = Notification(
                channel=channel,
                target=target,
                run_id=plan.run_id,
                tier=tier,
                subject=f"Run {plan.run_id}: {what} {pending.key} needs a decision",
                text=f"{pending.reason}\nOptions: {', '.join(pending.options)}",
                details={"kind": pending.kind, "key": pending.key, "goal": plan.goal},
            )
            self._side_effects.append(asyncio.create_task(self._send(notification)))

    async def _send(self, notification: Notification) -> None:
        give_up = DELIVERY_GIVE_UP if workflow.patched(PATCH_NOTIFY_GIVE_UP) else None
        try:
            await workflow.execute_activity(
                NOTIFY,
                notification,
                task_queue=TASK_QUEUE,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=give_up,
                retry_policy=NOTIFY_RETRY,
                summary=f"notify tier {notification.tier} via {notification.channel.value}",
            )
        except ActivityError as exc:
            workflow.logger.warning("notification failed for good: %s", _describe_failure(exc))

    def _publish_run_status(self) -> None:
        status = RunStatus.WAITING if self._pending else RunStatus.RUNNING
        self._require_state().status = status
        workflow.upsert_search_attributes([RUN_STATUS.value_set(status.value)])

    # --- bookkeeping ---------------------------------------------------------------------

    async def _storage(
        self,
        activity: str,
        arg: object,
        *,
        result_type: type | None = None,
        summary: str | None = None,
    ) -> Any:
        """Storage and tool calls: quick, idempotent database work, run as local activities.

        They execute on the worker that runs this workflow task, which saves a server
        round trip per turn; their results are still recorded in history.
        """
        return await workflow.execute_local_activity(
            activity,
            arg,
            result_type=result_type,
            start_to_close_timeout=STORAGE_TIMEOUT,
            retry_policy=STORAGE_RETRY,
            summary=summary,
        )

    def _account(self, task_state: TaskState, call: ModelCallResult) -> None:
        state = self._require_state()
        task_state.turns += 1
        task_state.model = call.model
        task_state.usage = task_state.usage + call.usage
        task_state.cost_usd += call.cost_usd
        state.usage = state.usage + call.usage
        state.cost_usd += call.cost_usd
        self._emit(
            EventType.COST_UPDATED,
            task_state.id,
            model=call.model,
            turn_cost_usd=call.cost_usd,
            turn_tokens=call.usage.input_tokens + call.usage.output_tokens,
        )

    def _emit(self, type_: EventType, task: str | None = None, **data: Any) -> None:
        """Record an event for the `events` query; deliver webhook types to the tenant's hooks."""
        state = self._require_state()
        event = RunEvent(
            seq=state.events[-1].seq + 1 if state.events else 1,
            type=type_,
            at=workflow.now(),
            task=task,
            data={
                **data,
                "cost_usd": round(state.cost_usd, 6),
                "tokens": state.usage.input_tokens + state.usage.output_tokens,
            },
        )
        state.events.append(event)
        if type_ in WEBHOOK_EVENT_TYPES and workflow.patched(PATCH_WEBHOOKS):
            self._side_effects.append(asyncio.create_task(self._deliver(event)))

    async def _deliver(self, event: RunEvent) -> None:
        plan = self._require_plan()
        try:
            await workflow.execute_activity(
                DELIVER_WEBHOOKS,
                WebhookDeliveryInput(tenant=plan.tenant, run_id=plan.run_id, event=event),
                task_queue=TASK_QUEUE,
                start_to_close_timeout=timedelta(seconds=60),
                schedule_to_close_timeout=DELIVERY_GIVE_UP,
                retry_policy=WEBHOOK_RETRY,
                summary=f"webhooks: {event.type.value}",
            )
        except ActivityError as exc:
            workflow.logger.warning("webhook delivery failed for good: %s", _describe_failure(exc))

    def _statuses(self) -> dict[str, TaskStatus]:
        return {t.id: t.status for t in self._require_state().tasks}

    def _require_state(self) -> RunState:
        assert self._state is not None, "state is set at the start of run()"
        return self._state

    def _require_plan(self) -> RunPlan:
        assert self._plan is not None, "the plan is set at the start of run()"
        return self._plan


def merge_artifacts(current: list[ArtifactRef], written: list[ArtifactRef]) -> list[ArtifactRef]:
    """A task's artifacts: the newest reference per path, in first-written order."""
    by_path = {ref.path: ref for ref in current}
    for ref in written:
        by_path[ref.path] = ref
    return list(by_path.values())


def _fold(into: TaskState, reviewer: TaskState) -> None:
    """A supervisor's turns count toward the task it reviewed."""
    into.turns += reviewer.turns
    into.usage = into.usage + reviewer.usage
    into.cost_usd += reviewer.cost_usd


def _automatic_answer(kind: str, policy: Any, key: str) -> Decision | TaskResolution:
    if kind == "gate":
        return automatic_decision(policy, key)
    if kind == "budget":
        return automatic_budget_decision()
    return automatic_resolution(policy, key)


def _reject(problems: list[str]) -> None:
    if problems:
        raise ApplicationError("; ".join(problems), type="InvalidPlanChange", non_retryable=True)


def _describe_failure(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and isinstance(cause, ActivityError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or exc)
