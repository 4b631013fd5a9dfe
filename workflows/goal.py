"""`GoalWorkflow`: one goal, run as a DAG of agent tasks with all the parallelism it allows."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        CALL_MODEL,
        RECORD_RUN_FINISHED,
        RECORD_RUN_STARTED,
        RUN_TOOL_CALLS,
        SEARCH_ATTRIBUTE_RUN_STATUS,
        SEARCH_ATTRIBUTE_TEMPLATE,
        SEARCH_ATTRIBUTE_TENANT,
        ArtifactRef,
        FinalizeRunInput,
        ModelCallInput,
        ModelCallResult,
        RunPlan,
        RunState,
        RunStatus,
        TaskPlan,
        TaskState,
        TaskStatus,
        ToolCallsInput,
        ToolCallsResult,
        TurnKey,
        agent_queue,
    )
    from workflows.dag import blocked_tasks, ready_tasks, should_run, upstream_ids

RUN_STATUS = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_RUN_STATUS)
TEMPLATE = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_TEMPLATE)
TENANT = SearchAttributeKey.for_keyword(SEARCH_ATTRIBUTE_TENANT)

STORAGE_TIMEOUT = timedelta(seconds=60)
STORAGE_RETRY = RetryPolicy(maximum_interval=timedelta(seconds=30))


class MaxTurnsExceeded(Exception):
    pass


@workflow.defn
class GoalWorkflow:
    def __init__(self) -> None:
        self._state: RunState | None = None

    @workflow.query
    def status(self) -> RunState | None:
        return self._state

    @workflow.run
    async def run(self, plan: RunPlan) -> RunState:
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

        running: dict[str, asyncio.Task[None]] = {}
        while True:
            # Near the history limit, start nothing new; once in-flight tasks finish, carry
            # the state into a fresh run.
            draining = self._history_is_long(plan)
            if not draining:
                self._start_ready_tasks(plan, running)
            if not running:
                if draining and any(t.status == TaskStatus.PENDING for t in state.tasks):
                    workflow.continue_as_new(plan.model_copy(update={"resume": state}))
                break
            await workflow.wait(list(running.values()), return_when=asyncio.FIRST_COMPLETED)
            for task_id in [tid for tid, t in running.items() if t.done()]:
                running.pop(task_id)

        failed = [t.id for t in state.tasks if t.status == TaskStatus.FAILED]
        state.status = RunStatus.FAILED if failed else RunStatus.COMPLETED
        if failed:
            state.error = f"tasks failed: {', '.join(failed)}"
        workflow.upsert_search_attributes([RUN_STATUS.value_set(state.status.value)])
        await self._storage(
            RECORD_RUN_FINISHED,
            FinalizeRunInput(state=state, workflow_id=workflow.info().workflow_id),
        )
        return state

    @staticmethod
    def _history_is_long(plan: RunPlan) -> bool:
        info = workflow.info()
        if info.is_continue_as_new_suggested():
            return True
        limit = plan.history_event_limit
        return limit is not None and info.get_current_history_length() >= limit

    def _start_ready_tasks(self, plan: RunPlan, running: dict[str, asyncio.Task[None]]) -> None:
        """Start every task whose dependencies are done; settle skipped and blocked ones first."""
        state = self._require_state()
        while True:
            statuses = {t.id: t.status for t in state.tasks}
            for task in blocked_tasks(plan.tasks, statuses):
                blocked = state.task(task.id)
                blocked.status = TaskStatus.FAILED
                blocked.error = "not run: an upstream task failed"
            outputs = {t.id: t.outputs for t in state.tasks}
            settled_any = False
            for task in ready_tasks(plan.tasks, {t.id: t.status for t in state.tasks}):
                if should_run(task, outputs):
                    state.task(task.id).status = TaskStatus.RUNNING
                    running[task.id] = asyncio.create_task(self._run_task(plan, task))
                else:
                    state.task(task.id).status = TaskStatus.SKIPPED
                    state.task(task.id).summary = f"skipped: condition {task.when!r} is false"
                    settled_any = True
            if not settled_any:
                return

    async def _run_task(self, plan: RunPlan, task: TaskPlan) -> None:
        task_state = self._require_state().task(task.id)
        try:
            await self._agent_loop(plan, task, task_state)
            task_state.status = TaskStatus.COMPLETED
        except (ActivityError, MaxTurnsExceeded) as exc:
            task_state.status = TaskStatus.FAILED
            task_state.error = _describe_failure(exc)

    async def _agent_loop(self, plan: RunPlan, task: TaskPlan, task_state: TaskState) -> None:
        """Model call, then that turn's tool calls, until the agent ends its turn."""
        state = self._require_state()
        upstream = [
            ref for tid in upstream_ids(plan.tasks, task.id) for ref in state.task(tid).artifacts
        ]
        for turn in range(task.max_turns):
            key = TurnKey(
                run_id=plan.run_id,
                workflow_id=workflow.info().workflow_id,
                task_id=task.id,
                turn=turn,
            )
            call: ModelCallResult = await workflow.execute_activity(
                CALL_MODEL,
                ModelCallInput(
                    key=key,
                    role=task.role,
                    goal=plan.goal,
                    description=task.description,
                    model=task.model or plan.model,
                    upstream=upstream,
                    tenant=plan.tenant,
                ),
                result_type=ModelCallResult,
                task_queue=agent_queue(task.role),
                start_to_close_timeout=timedelta(seconds=plan.model_call_timeout_seconds),
                heartbeat_timeout=timedelta(seconds=plan.model_heartbeat_timeout_seconds),
                retry_policy=RetryPolicy(
                    maximum_attempts=plan.model_max_attempts,
                    maximum_interval=timedelta(seconds=60),
                ),
                summary=f"{task.id} ({task.role}): turn {turn + 1}",
            )
            self._account(task_state, call)
            if call.tool_calls:
                tools = await self._storage(
                    RUN_TOOL_CALLS,
                    ToolCallsInput(key=key, role=task.role, model=call.model),
                    result_type=ToolCallsResult,
                    summary=f"{task.id} ({task.role}): tools of turn {turn + 1}",
                )
                task_state.artifacts = merge_artifacts(task_state.artifacts, tools.written)
                task_state.outputs.update(tools.outputs)
            if call.stop_reason != "tool_use":
                task_state.summary = call.text
                return
        raise MaxTurnsExceeded(f"{task.id} did not finish within {task.max_turns} turns")

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

    def _require_state(self) -> RunState:
        assert self._state is not None, "state is set at the start of run()"
        return self._state


def merge_artifacts(current: list[ArtifactRef], written: list[ArtifactRef]) -> list[ArtifactRef]:
    """A task's artifacts: the newest reference per path, in first-written order."""
    by_path = {ref.path: ref for ref in current}
    for ref in written:
        by_path[ref.path] = ref
    return list(by_path.values())


def _describe_failure(exc: BaseException) -> str:
    cause: BaseException | None = exc
    while cause is not None and isinstance(cause, ActivityError):
        cause = cause.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'error'}: {cause.message}"
    return str(cause or exc)
