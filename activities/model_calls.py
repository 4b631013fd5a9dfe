"""The model-call activity: one turn of one agent, recorded in the ledger exactly once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from agents.context import UpstreamFile, build_task_message
from agents.conversation import (
    build_messages,
    response_from_json,
    response_json,
    tool_results_from_json,
)
from agents.protocol import LLMProvider, Message, ModelRequest, ModelResponse, ProviderError
from agents.roles import get_role
from agents.tools import TOOL_DEFINITIONS
from core import metrics, storage, tenancy
from core.contracts import BUDGET_EXCEEDED_ERROR, CALL_MODEL, ModelCallInput, ModelCallResult
from core.db import Database, LedgerEntry
from core.logs import get_logger

HEARTBEAT_EVERY_SECONDS = 5.0

log = get_logger(__name__)


def heartbeat_interval() -> float:
    """Often enough that three beats fit in the activity's heartbeat timeout."""
    timeout = activity.info().heartbeat_timeout
    if timeout is None:
        return HEARTBEAT_EVERY_SECONDS
    return min(HEARTBEAT_EVERY_SECONDS, max(timeout.total_seconds() / 3, 0.1))


class ModelActivities:
    def __init__(self, db: Database, provider: LLMProvider) -> None:
        self.db = db
        self.provider = provider

    @activity.defn(name=CALL_MODEL)
    async def call_model(self, call: ModelCallInput) -> ModelCallResult:
        context = await storage.turn_context(self.db, call.key, [ref.id for ref in call.upstream])
        if context.recorded is not None:
            # The call completed before (e.g. the worker died before reporting it): reuse it.
            log.info("model call answered from the ledger", model=context.recorded.model)
            return _result(context.recorded, replayed=True)

        problem = await tenancy.budget_problem(
            self.db,
            tenant=call.tenant,
            workflow_id=call.key.workflow_id,
            run_tokens=call.budget_tokens,
            run_usd=call.budget_usd,
        )
        if problem is not None:
            log.warning("budget spent: model call not made", reason=problem)
            # Checked before every call, from the ledger: a paused run never spends past it.
            raise ApplicationError(problem, type=BUDGET_EXCEEDED_ERROR, non_retryable=True)

        role = get_role(call.role)
        request = ModelRequest(
            model=call.model or self.provider.default_model,
            system=role.system_prompt(),
            messages=_conversation(call, context),
            tools=[TOOL_DEFINITIONS[name] for name in _tools(role.tools, call)],
            max_tokens=role.max_tokens,
            role=call.role,
        )
        started = time.monotonic()
        response = await _with_heartbeats(self._complete(request))
        seconds = time.monotonic() - started
        entry = await storage.record_model_call(
            self.db,
            call.key,
            tenant=call.tenant,
            role=call.role,
            provider=self.provider.name,
            model=response.model,
            usage=response.usage,
            cost_usd=self.provider.cost_usd(response.model, response.usage),
            stop_reason=response.stop_reason,
            response_json=response_json(response),
        )
        log.info(
            "model call",
            model=entry.model,
            provider=entry.provider,
            seconds=round(seconds, 3),
            input_tokens=entry.input_tokens,
            output_tokens=entry.output_tokens,
            cost_usd=entry.cost_usd,
            stop_reason=entry.stop_reason,
        )
        metrics.record_model_call(
            tenant=call.tenant,
            role=call.role,
            model=entry.model,
            provider=entry.provider,
            seconds=seconds,
            usage=storage.entry_usage(entry),
            cost=entry.cost_usd,
        )
        return _result(entry, replayed=False)

    async def _complete(self, request: ModelRequest) -> ModelResponse:
        try:
            return await self.provider.complete(request)
        except ProviderError as exc:
            raise ApplicationError(
                str(exc),
                type="ProviderError",
                non_retryable=not exc.retryable,
                next_retry_delay=timedelta(seconds=exc.retry_after) if exc.retry_after else None,
            ) from exc


async def _with_heartbeats(work: Coroutine[Any, Any, ModelResponse]) -> ModelResponse:
    """Heartbeat while a long model call runs, so a dead worker is noticed in seconds."""
    task = asyncio.ensure_future(work)
    interval = heartbeat_interval()
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=interval)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        task.cancel()


def _tools(role_tools: tuple[str, ...], call: ModelCallInput) -> list[str]:
    """A reviewing agent gets the verdict tool whatever its role."""
    if call.review_of and "submit_verdict" not in role_tools:
        return [*role_tools, "submit_verdict"]
    return list(role_tools)


def _conversation(call: ModelCallInput, context: storage.TurnContext) -> list[Message]:
    first = build_task_message(
        goal=call.goal,
        task_id=call.key.task_id,
        role=call.role,
        description=call.description,
        upstream=[UpstreamFile(a.path, a.task_id, a.content) for a in context.upstream],
        feedback=call.feedback,
        review_of=call.review_of,
    )
    return build_messages(
        first,
        [response_from_json(entry.response) for entry in context.earlier_calls],
        [tool_results_from_json(entry.results) for entry in context.earlier_results],
    )


def _result(entry: LedgerEntry, *, replayed: bool) -> ModelCallResult:
    response = response_from_json(entry.response)
    return ModelCallResult(
        stop_reason=entry.stop_reason,
        tool_calls=len(response.tool_uses),
        usage=storage.entry_usage(entry),
        cost_usd=entry.cost_usd,
        model=entry.model,
        provider=entry.provider,
        text=response.text[:2000],
        replayed=replayed,
    )
