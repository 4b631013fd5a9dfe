"""`GoalWorkflow`: one goal, run as a DAG of agent tasks with all the parallelism it allows.

A task is a coroutine inside the workflow. Its work is an agent loop (`AgentLoop`:
model call, then that turn's tool calls); a gate's is checks, a reviewer and revisions
(`Review`), which also validates and supervises ordinary tasks; whatever needs a person
waits on `Humans`, with escalation timers. All three share one `RunContext` (plan, state,
events, storage), not the workflow: this class keeps the handlers, `run` and the DAG.
"""

from __future__ import annotations

import asyncio

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        ANSWER_REFUSED_ERROR,
        BUDGET_GATE,
        RECORD_RUN_FINISHED,
        RECORD_RUN_STARTED,
        RUN_FAILED_ERROR,
        SEARCH_ATTRIBUTE_TEMPLATE,
        SEARCH_ATTRIBUTE_TENANT,
        Decision,
        EventType,
        FinalizeRunInput,
        NewTask,
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
    )
    from workflows import changes
    from workflows.dag import blocked_tasks, keep_shape, ready_tasks, should_run, skip_summary

from workflows.agent_loop import AgentLoop
from workflows.humans import Humans, WaitKind
from workflows.review import Review
from workflows.run_context import PATCH_WEBHOOKS, RUN_STATUS, RunContext
from workflows.stages import Stages

TEMPLATE = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_TEMPLATE)
TENANT = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_TENANT)

# workflow.patched ids: histories recorded before each change replay the old path.
PATCH_DRAIN_BEFORE_CONTINUE = "drain-before-continue-as-new"
PATCH_FAILED_RUNS_FAIL = "failed-runs-fail"

# What the Web UI's signal and update forms say of the answers a person may send.
DECIDE_HELP = (
    'Decide a waiting gate or the budget: {"gate": "approval", "decision": "approve", '
    '"by": "alice", "comment": "..."}; decision: approve, reject, request_changes (a gate), '
    "raise, abort (the budget)"
)
RESOLVE_HELP = (
    'Resolve a dead-lettered task: {"task": "design", "action": "retry", "by": "alice"}; '
    "action: retry, skip, abort"
)


@workflow.defn
class GoalWorkflow:
    @workflow.init
    def __init__(self, plan: RunPlan) -> None:
        state = plan.resume or RunState(
            run_id=plan.run_id,
            goal=plan.goal,
            template=plan.template,
            tasks=[TaskState(id=t.id, role=t.role) for t in plan.tasks],
        )
        self._run = RunContext(plan, state)
        keep_shape(plan.tasks, state.tasks)
        self._humans = Humans(self._run)
        self._agents = AgentLoop(self._run, self._humans)
        self._review = Review(self._run, self._agents, self._humans)
        self._stages = Stages(self._run, self._agents, self._humans)
        self._plan_changed = False
        """An update changed the plan: the DAG looks again for tasks to start."""

    # --- what a client can ask and say ---------------------------------------------------

    @workflow.query
    def status(self) -> RunState | None:
        return self._run.state

    @workflow.query
    def pending_decisions(self) -> list[PendingDecision]:
        return list(self._humans.pending.values())

    @workflow.query
    def events(self, after: int = 0) -> list[RunEvent]:
        """Events with `seq` greater than `after`: what a reconnecting client missed."""
        return [e for e in self._run.state.events if e.seq > after]

    @workflow.signal(description=DECIDE_HELP + "; a wrong one is logged and dropped")
    def decide(self, decision: Decision) -> None:
        """A gate's or the budget's decision; a wrong one is logged and dropped (the Web UI's
        signal form, scripts). `submit_decision` answers whether it was taken."""
        self._humans.answer(decision.gate, _decision_kind(decision), decision)

    @workflow.signal(description=RESOLVE_HELP + "; a wrong one is logged and dropped")
    def resolve_task(self, resolution: TaskResolution) -> None:
        """A dead letter's resolution by signal; `submit_resolution` answers whether it was taken."""
        self._humans.answer(resolution.task, "dead_letter", resolution)

    @workflow.update(description=DECIDE_HELP + "; a wrong one is refused with the reason")
    def submit_decision(self, decision: Decision) -> Decision:
        """A gate's or the budget's decision; returns the decision the run took."""
        self._humans.answer(decision.gate, _decision_kind(decision), decision)
        return decision

    @submit_decision.validator
    def _check_decision(self, decision: Decision) -> None:
        _refuse(self._humans.refusal(decision.gate, _decision_kind(decision), decision))

    @workflow.update(description=RESOLVE_HELP + "; a wrong one is refused with the reason")
    def submit_resolution(self, resolution: TaskResolution) -> TaskResolution:
        """A dead-lettered task's resolution; returns the resolution the run took."""
        self._humans.answer(resolution.task, "dead_letter", resolution)
        return resolution

    @submit_resolution.validator
    def _check_resolution(self, resolution: TaskResolution) -> None:
        _refuse(self._humans.refusal(resolution.task, "dead_letter", resolution))

    @workflow.update
    async def add_task(self, new: NewTask) -> TaskState:
        plan, state = self._run.plan, self._run.state
        plan.tasks = changes.apply_add(plan.tasks, new)
        state.tasks.append(TaskState(id=new.id, role=new.role))
        self._plan_changed = True
        return state.task(new.id)

    @add_task.validator
    def _check_add(self, new: NewTask) -> None:
        plan = self._run.plan
        _reject(changes.check_add(plan.tasks, self._run.statuses(), plan.roles, new))

    @workflow.update
    async def remove_task(self, removal: TaskRemoval) -> None:
        plan, state = self._run.plan, self._run.state
        plan.tasks = changes.apply_remove(plan.tasks, removal)
        state.tasks = [t for t in state.tasks if t.id != removal.task]
        self._plan_changed = True

    @remove_task.validator
    def _check_remove(self, removal: TaskRemoval) -> None:
        _reject(changes.check_remove(self._run.statuses(), removal))

    @workflow.update
    async def modify_task(self, change: TaskModification) -> TaskState:
        plan, state = self._run.plan, self._run.state
        plan.tasks = changes.apply_modify(plan.tasks, change)
        if change.role is not None:
            state.task(change.task).role = change.role
        self._plan_changed = True
        return state.task(change.task)

    @modify_task.validator
    def _check_modify(self, change: TaskModification) -> None:
        plan = self._run.plan
        _reject(changes.check_modify(plan.tasks, self._run.statuses(), plan.roles, change))

    # --- the run -------------------------------------------------------------------------

    @workflow.run
    async def run(self, plan: RunPlan) -> RunState:
        """Run the DAG; a failed run records its final state, then fails its execution."""
        state = self._run.state
        self._run.show_progress()
        if plan.resume is None:
            workflow.upsert_search_attributes(
                [
                    RUN_STATUS.value_set(RunStatus.RUNNING.value),
                    TEMPLATE.value_set(plan.template),
                    TENANT.value_set(plan.tenant),
                ]
            )
            await self._run.storage(RECORD_RUN_STARTED, plan)
            self._run.emit(EventType.RUN_STARTED, goal=plan.goal, template=plan.template)

        running: dict[str, asyncio.Task[None]] = {}
        try:
            await self._run_dag(running)
        except asyncio.CancelledError:
            await self._record_cancellation(running)
            raise

        self._run.publish_status(self._final_status())
        finished = EventType.RUN_COMPLETED
        if state.status != RunStatus.COMPLETED:
            finished = EventType.RUN_FAILED
        self._run.emit(finished, error=state.error)
        if workflow.patched(PATCH_WEBHOOKS):
            await self._run.drain()
        await self._run.storage(
            RECORD_RUN_FINISHED,
            FinalizeRunInput(state=state, workflow_id=workflow.info().workflow_id),
        )
        # Failed in Temporal too, so `ExecutionStatus="Failed"` finds it; the CLI and the
        # API read its state from the database row written just above.
        if state.status == RunStatus.FAILED and workflow.patched(PATCH_FAILED_RUNS_FAIL):
            raise ApplicationError(
                f"run {plan.run_id} failed: {state.error}",
                type=RUN_FAILED_ERROR,
                non_retryable=True,
            )
        return state

    async def _run_dag(self, running: dict[str, asyncio.Task[None]]) -> None:
        """Start what is ready, react to whatever finishes, until nothing can run."""
        while True:
            keep_shape(self._run.plan.tasks, self._run.state.tasks)  # after plan changes
            # Near the history limit, start nothing new; once in-flight tasks finish, carry
            # the state into a fresh run.
            draining = self._history_is_long()
            if not draining and self._run.fail_reason is None:
                self._start_ready_tasks(running)
            if not running:
                if draining and any(t.status == TaskStatus.PENDING for t in self._run.state.tasks):
                    await self._continue_as_new()
                return
            await workflow.wait_condition(
                lambda: self._plan_changed or any(t.done() for t in running.values())
            )
            self._plan_changed = False
            for task_id in [tid for tid, t in running.items() if t.done()]:
                running.pop(task_id).result()  # re-raise a bug instead of hiding it

    async def _continue_as_new(self) -> None:
        """Carry the plan and state into a fresh run, once nothing of this one is in flight.

        Notifications and webhook deliveries still retrying would die with this run, and an
        update still in its handler would change a plan already handed over.
        """
        if workflow.patched(PATCH_DRAIN_BEFORE_CONTINUE):
            await self._run.drain()
            await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._run.plan.model_copy(update={"resume": self._run.state}))

    async def _record_cancellation(self, running: dict[str, asyncio.Task[None]]) -> None:
        """A cancelled run stops its tasks and still records how far it got."""
        state = self._run.state
        for task in running.values():
            task.cancel()
        for task_state in state.tasks:
            if task_state.status not in (TaskStatus.COMPLETED, TaskStatus.SKIPPED):
                task_state.status = TaskStatus.FAILED
                task_state.error = task_state.error or "not finished: the run was cancelled"
        state.error = "cancelled"
        self._run.publish_status(RunStatus.CANCELLED)
        self._run.emit(EventType.RUN_CANCELLED)
        await self._run.storage(
            RECORD_RUN_FINISHED,
            FinalizeRunInput(state=state, workflow_id=workflow.info().workflow_id),
        )

    def _final_status(self) -> RunStatus:
        state, fail_reason = self._run.state, self._run.fail_reason
        for task in state.tasks:
            if task.status == TaskStatus.PENDING:
                task.status = TaskStatus.FAILED
                task.error = f"not run: {fail_reason or 'an upstream task failed'}"
        failed = [t.id for t in state.tasks if t.status == TaskStatus.FAILED]
        if fail_reason:
            state.error = fail_reason
            return RunStatus.FAILED
        if failed:
            state.error = f"tasks failed: {', '.join(failed)}"
            return RunStatus.FAILED
        return RunStatus.COMPLETED

    def _history_is_long(self) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        limit = self._run.plan.history_event_limit
        return limit is not None and info.get_current_history_length() >= limit

    def _start_ready_tasks(self, running: dict[str, asyncio.Task[None]]) -> None:
        """Start every task whose dependencies are done; settle skipped and blocked ones first."""
        plan, state, emit = self._run.plan, self._run.state, self._run.emit
        while True:
            for task in blocked_tasks(plan.tasks, self._run.statuses()):
                blocked = state.task(task.id)
                blocked.status = TaskStatus.FAILED
                blocked.error = "not run: an upstream task failed"
                emit(EventType.TASK_FAILED, task.id, error=blocked.error)
            outputs = {t.id: t.outputs for t in state.tasks}
            settled_any = False
            for task in ready_tasks(plan.tasks, self._run.statuses()):
                if should_run(task, outputs):
                    state.task(task.id).status = TaskStatus.RUNNING
                    emit(EventType.TASK_STARTED, task.id, role=task.role)
                    running[task.id] = asyncio.create_task(self._run_task(task))
                else:
                    state.task(task.id).status = TaskStatus.SKIPPED
                    state.task(task.id).summary = skip_summary(task)
                    emit(EventType.TASK_SKIPPED, task.id, reason=state.task(task.id).summary)
                    settled_any = True
            if not settled_any:
                return

    async def _run_task(self, task: TaskPlan) -> None:
        task_state = self._run.state.task(task.id)
        if task.gate:
            done = await self._review.run_gate(task, task_state)
        else:
            done = (
                await self._agents.work(task, task_state)
                and await self._review.validate(task, task_state)
                and await self._review.supervise(task, task_state)
                and await self._stages.settle(task, task_state)
            )
        if done:
            task_state.status = TaskStatus.COMPLETED
        self._run.emit_task_outcome(task_state)


def _decision_kind(decision: Decision) -> WaitKind:
    return "budget" if decision.gate == BUDGET_GATE else "gate"


def _refuse(problem: str | None) -> None:
    if problem is not None:
        raise ApplicationError(problem, type=ANSWER_REFUSED_ERROR, non_retryable=True)


def _reject(problems: list[str]) -> None:
    if problems:
        raise ApplicationError("; ".join(problems), type="InvalidPlanChange", non_retryable=True)
