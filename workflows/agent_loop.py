"""One task's agent: a model call, then that turn's tool calls, until the agent ends its turn.

A model call runs on the role's queue (`agent.<role>`); a spent budget pauses every task
for one `raise` or `abort` decision. The tool calls of a turn run in one local activity,
which also carries the notes agents post to each other. A task whose model calls fail
for good is dead-lettered: the run asks a human to retry, skip or abort it.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        BUDGET_EXCEEDED_ERROR,
        BUDGET_GATE,
        CALL_MODEL,
        RUN_TOOL_CALLS,
        ArtifactRef,
        BreakdownRequest,
        Decision,
        DecisionKind,
        EventType,
        ModelCallInput,
        ModelCallResult,
        TaskPlan,
        TaskResolution,
        TaskState,
        TaskStatus,
        ToolCallsInput,
        ToolCallsResult,
        TurnKey,
        agent_queue,
    )
    from workflows import expansion
    from workflows import notes as agent_notes
    from workflows.dag import upstream_ids
    from workflows.gates import POLICY_BY

from workflows import own_checks
from workflows.humans import Humans
from workflows.run_context import RunContext, describe_failure

MODEL_CALL_FIRST_RETRY = timedelta(milliseconds=200)
"""How soon a model call cut by its worker's death (a heartbeat timeout) runs again. A
provider's failure backs off by itself: the activity gives it a `next_retry_delay`
(`agents.providers.errors.provider_retry_delay`), so this short interval never hammers an API."""

# workflow.patched ids: histories recorded before each change replay the old path.
PATCH_NOTES = "agent-notes"


class MaxTurnsExceeded(Exception):
    pass


class BudgetAborted(Exception):
    """A human (or the escalation policy) chose to stop the run when its budget was spent."""


@dataclass(frozen=True)
class Assignment:
    """What stays the same across the turns of one attempt at a task."""

    task: TaskPlan
    description: str
    feedback: str
    review_of: str | None
    upstream: list[ArtifactRef]
    label: str
    """How activity summaries name the task in the Web UI, e.g. `backend (backend_engineer)`."""
    notes_on: bool
    """Whether this run's history has agent notes (histories before them replay without)."""
    peers: dict[str, str]
    checks_own_work: bool
    """Whether the task's own checks run when its agent ends its turn (`workflows.own_checks`)."""


class AgentLoop:
    """Runs agents for the run's tasks, gates, validators and reviewers alike."""

    def __init__(self, run: RunContext, humans: Humans) -> None:
        self._run = run
        self._humans = humans
        self._own_checks = own_checks.OwnChecks(run)
        self._budget_answer: asyncio.Task[Decision] | None = None
        """The one budget decision every task that hit the spent budget waits for."""

    async def work(
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
                job = self._assign(task, task_state, feedback, review_of, upstream)
                await self._turns(job, task_state)
                return True
            except BudgetAborted as exc:
                task_state.status = TaskStatus.FAILED
                task_state.error = str(exc)
                self._run.fail_reason = self._run.fail_reason or str(exc)
                return False
            except (ActivityError, MaxTurnsExceeded) as exc:
                task_state.status = TaskStatus.DEAD_LETTERED
                task_state.error = describe_failure(exc)
                self._run.emit(EventType.TASK_DEAD_LETTERED, task.id, error=task_state.error)
            answer = await self._humans.resolution(task.id, task_state.error or "failed")
            if answer.action == "retry":
                task_state.status, task_state.error = TaskStatus.RUNNING, None
                continue
            self._settle_dead_letter(task, task_state, answer)
            return False

    def _settle_dead_letter(
        self, task: TaskPlan, task_state: TaskState, answer: TaskResolution
    ) -> None:
        task_state.summary = f"{answer.action} by {answer.by}: {answer.comment}".strip(": ")
        if answer.action == "skip":
            task_state.status = TaskStatus.SKIPPED
            return
        task_state.status = TaskStatus.FAILED
        task_state.error = f"aborted by {answer.by}: {task_state.error}"
        if answer.by == POLICY_BY:
            self._run.fail_reason = f"task {task.id} dead-lettered and nobody resolved it"

    def _assign(
        self,
        task: TaskPlan,
        task_state: TaskState,
        feedback: str,
        review_of: str | None,
        upstream: list[ArtifactRef] | None,
    ) -> Assignment:
        plan, state = self._run.plan, self._run.state
        if upstream is None:
            upstream = [
                ref
                for tid in upstream_ids(plan.tasks, task.id)
                for ref in state.task(tid).artifacts
            ]
        round_ = f", attempt {task_state.attempt + 1}" if task_state.attempt else ""
        notes_on = workflow.patched(PATCH_NOTES)
        return Assignment(
            task=task,
            description="\n\n".join(p for p in (task.description, task.prompt_addition) if p),
            feedback=feedback,
            review_of=review_of,
            upstream=upstream,
            label=f"{task.id} ({task.role}){round_}",
            notes_on=notes_on,
            peers=agent_notes.peers(plan.tasks, task.id) if notes_on else {},
            checks_own_work=own_checks.wants_own_checks(task, review_of),
        )

    async def _turns(self, job: Assignment, task_state: TaskState) -> None:
        """Model call, then that turn's tool calls, until the agent ends its turn and its
        own checks, if it has any, do not send it back."""
        task = job.task
        while task_state.next_turn < task.max_turns:
            turn = task_state.next_turn
            if turn == 0:  # a new attempt is a new conversation
                own_checks.new_attempt(task_state)
                if job.notes_on:
                    task_state.delivered_notes = {}
            key = TurnKey(
                run_id=self._run.plan.run_id,
                workflow_id=workflow.info().workflow_id,
                execution_id=workflow.info().run_id,
                task_id=task.id,
                attempt=task_state.attempt,
                turn=turn,
            )
            call = await self._call_model(
                self._request(job, task_state, key), summary=f"{job.label}: turn {turn + 1}"
            )
            self._account(task_state, call)
            if call.tool_results is not None:  # they ran with the model call
                await self._settle_tools(job, task_state, key.turn, call.tool_results)
            elif call.tool_calls:
                await self._run_tools(job, task_state, key, call)
            task_state.next_turn = turn + 1
            if call.stop_reason != "tool_use":
                task_state.summary = call.text
                if job.checks_own_work and await self._own_checks.sent_back(
                    task, task_state, turn=turn, label=job.label
                ):
                    continue
                return
        raise MaxTurnsExceeded(f"{task.id} did not finish within {task.max_turns} turns")

    def _request(self, job: Assignment, task_state: TaskState, key: TurnKey) -> ModelCallInput:
        plan, task = self._run.plan, job.task
        notes = (
            agent_notes.deliver(
                self._run.state.notes,
                task_id=task.id,
                role=task.role,
                turn=key.turn,
                delivered=task_state.delivered_notes,
            )
            if job.notes_on
            else []
        )
        return ModelCallInput(
            key=key,
            role=task.role,
            goal=plan.goal,
            description=job.description,
            feedback=job.feedback,
            review_of=job.review_of,
            model=task.model or plan.model,
            upstream=job.upstream,
            tenant=plan.tenant,
            response_cache=plan.response_cache,
            notes=notes,
            peers=job.peers,
            followups=list(task_state.followups),
            repository=plan.repository.snapshot_id if plan.repository else None,
            test_command=self._run.test_command,
            work_breakdown=self._breakdown_request(job),
            tools=self._tool_batch(job, task_state, key),
        )

    def _breakdown_request(self, job: Assignment) -> BreakdownRequest | None:
        """A stage's planning task is asked for its work breakdown (reviews of it are not)."""
        stage = expansion.stage_planned_by(self._run.plan.stages, job.task.id)
        if stage is None or job.review_of is not None:
            return None
        return expansion.breakdown_request(self._run.plan.tasks, stage)

    def _tool_batch(self, job: Assignment, task_state: TaskState, key: TurnKey) -> ToolCallsInput:
        """How the turn's tool calls run, wherever they run; `model` is the answer's."""
        task = job.task
        return ToolCallsInput(
            key=key,
            role=task.role,
            model="",
            review_of=job.review_of,
            recipients=agent_notes.recipients(self._run.plan.tasks) if job.notes_on else [],
            command_timeout_seconds=task.command_timeout_seconds,
            command_seconds_left=max(task.command_budget_seconds - task_state.command_seconds, 0),
            plans_work=self._breakdown_request(job) is not None,
        )

    async def _run_tools(
        self, job: Assignment, task_state: TaskState, key: TurnKey, call: ModelCallResult
    ) -> None:
        """The turn's tool calls as a step of their own: in the sandbox when they run
        commands, else in one local activity (a worker that did not run them with the call)."""
        batch = self._tool_batch(job, task_state, key)
        batch.model = call.model
        summary = f"{job.label}: tools of turn {key.turn + 1}"
        tools: ToolCallsResult
        if call.commands:
            # Commands run generated code: the whole turn's calls go where the sandbox is.
            tools = await self._run.sandboxed(
                RUN_TOOL_CALLS, batch, result_type=ToolCallsResult, summary=summary
            )
        else:
            tools = await self._run.storage(
                RUN_TOOL_CALLS, batch, result_type=ToolCallsResult, summary=summary
            )
        await self._settle_tools(job, task_state, key.turn, tools)

    async def _settle_tools(
        self, job: Assignment, task_state: TaskState, turn: int, tools: ToolCallsResult
    ) -> None:
        """What the turn's tool calls did goes into the task's state; then its notes."""
        task_state.commands += tools.commands
        task_state.command_seconds += sum(c.duration_seconds for c in tools.commands)
        for name, count in tools.tool_counts.items():
            task_state.tool_counts[name] = task_state.tool_counts.get(name, 0) + count
        task_state.artifacts = merge_artifacts(task_state.artifacts, tools.written)
        task_state.outputs.update(tools.outputs)
        if job.notes_on:
            await self._take_notes(job.task, task_state, turn, tools)

    async def _take_notes(
        self, task: TaskPlan, task_state: TaskState, turn: int, tools: ToolCallsResult
    ) -> None:
        """Post the turn's notes to the run's state; hold the agent if it waits for one."""
        state = self._run.state
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
            self._run.emit(
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
            await workflow.wait_condition(
                may_go_on,
                timeout=wait.timeout_seconds,
                timeout_summary=f"{task.id} waits for a note",
            )
        except TimeoutError:
            workflow.logger.info("%s waited %ss for a note in vain", task.id, wait.timeout_seconds)

    async def _call_model(self, call: ModelCallInput, summary: str) -> ModelCallResult:
        """One model call; when a budget is spent, pause for `raise` or `abort` and go on."""
        plan = self._run.plan
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
                        initial_interval=MODEL_CALL_FIRST_RETRY,
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
            self._run.emit(EventType.BUDGET_EXCEEDED, reason=reason)
            self._budget_answer = asyncio.create_task(
                self._humans.decision("budget", BUDGET_GATE, reason, ["raise", "abort"])
            )
        answer = await self._budget_answer
        if answer.decision != DecisionKind.RAISE:
            raise BudgetAborted(f"budget spent ({reason}); aborted by {answer.by}")
        plan = self._run.plan
        if answer.budget_tokens is not None:
            plan.budget_tokens = answer.budget_tokens
        if answer.budget_usd is not None:
            plan.budget_usd = answer.budget_usd

    def _account(self, task_state: TaskState, call: ModelCallResult) -> None:
        state = self._run.state
        task_state.turns += 1
        task_state.model = call.model
        task_state.usage = task_state.usage + call.usage
        task_state.cost_usd += call.cost_usd
        state.usage = state.usage + call.usage
        state.cost_usd += call.cost_usd
        self._run.emit(
            EventType.COST_UPDATED,
            task_state.id,
            model=call.model,
            turn_cost_usd=call.cost_usd,
            turn_tokens=call.usage.input_tokens + call.usage.output_tokens,
        )


def merge_artifacts(current: list[ArtifactRef], written: list[ArtifactRef]) -> list[ArtifactRef]:
    """A task's artifacts: the newest reference per path, in first-written order."""
    by_path = {ref.path: ref for ref in current}
    for ref in written:
        by_path[ref.path] = ref
    return list(by_path.values())
