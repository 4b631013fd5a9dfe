"""The model-call activity: one turn of one agent, recorded in the ledger exactly once.

Before the provider is called the request is fitted to the role's context budget
(oversized upstream artifacts replaced by stored summaries, the agent's oldest turns
dropped), marked for the provider's prompt cache, and looked up in the tenant's response
cache: an identical earlier request is answered from the ledger at no cost.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.summaries import Spent, Summarizer, render_summary
from agents.context import UpstreamFile, task_message_blocks
from agents.context_window import (
    ELIDE_SHARE,
    TokenEstimator,
    choose_summaries,
    elide_large_inputs,
    mark_last_message,
    trim_history,
    upstream_allowance,
)
from agents.conversation import (
    build_messages,
    response_from_json,
    response_json,
    tool_results_from_json,
)
from agents.llm import cheap_model, context_budget, prompt_caching
from agents.protocol import (
    LLMProvider,
    Message,
    ModelRequest,
    ModelResponse,
    ProviderError,
    TokenCounter,
)
from agents.roles import get_role, team_handbook
from agents.tools import TOOL_DEFINITIONS
from core.contracts import (
    BUDGET_EXCEEDED_ERROR,
    CALL_MODEL,
    VALIDATOR_ROLE,
    ModelCallInput,
    ModelCallResult,
    TurnKey,
    Usage,
)
from core.infrastructure import metrics
from core.infrastructure.logs import get_logger
from core.infrastructure.settings import Settings
from core.persistence import reuse, storage, tenancy
from core.persistence.db import Database, LedgerEntry

HEARTBEAT_EVERY_SECONDS = 5.0
EXACT_COUNT_ABOVE = 0.8
"""Share of the context budget above which the provider's exact token count is asked for."""

T = TypeVar("T")

log = get_logger(__name__)


def heartbeat_interval() -> float:
    """Often enough that three beats fit in the activity's heartbeat timeout."""
    timeout = activity.info().heartbeat_timeout
    if timeout is None:
        return HEARTBEAT_EVERY_SECONDS
    return min(HEARTBEAT_EVERY_SECONDS, max(timeout.total_seconds() / 3, 0.1))


class ModelActivities:
    def __init__(
        self, db: Database, provider: LLMProvider, settings: Settings | None = None
    ) -> None:
        self.db = db
        self.provider = provider
        self.settings = settings or Settings()
        self.estimator = TokenEstimator()
        self.summarizer = Summarizer(
            db,
            self._paid_call,
            model=self.settings.provider.summary_model or cheap_model(provider),
            max_tokens=self.settings.provider.summary_tokens,
            estimator=self.estimator,
        )

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

        spent = Spent()
        request = await _with_heartbeats(self._request(call, context, spent))
        fingerprint = ""
        if call.response_cache and self.settings.provider.response_cache_enabled:
            fingerprint = _resolved(self.provider, request).fingerprint(self.provider.name)
            earlier = await reuse.cached_response(self.db, call.tenant, fingerprint)
            if earlier is not None:
                return _result(await self._cache_hit(call, earlier), replayed=False, spent=spent)
        entry = await self._paid_call(request, call.key, call.tenant)
        if fingerprint and entry.id is not None and entry.stop_reason != "max_tokens":
            await reuse.remember_response(self.db, call.tenant, fingerprint, entry.id)
        return _result(entry, replayed=False, spent=spent)

    async def _request(
        self, call: ModelCallInput, context: storage.TurnContext, spent: Spent
    ) -> ModelRequest:
        """The turn's request, inside the role's context budget when management is on."""
        role = get_role(call.role)
        # With a prompt cache, one system prompt for every agent lets all of a run's agents
        # share the cached prefix; without one, each agent sends only its own role's prompt.
        # The validator always gets the handbook: it judges work by the other roles' contracts.
        shared = prompt_caching(self.provider) or call.role == VALIDATOR_ROLE
        assignment = role.assignment() if shared else ""
        request = ModelRequest(
            model=call.model or self.provider.default_model,
            system=team_handbook() if shared else role.system_prompt(),
            messages=[],
            tools=[
                TOOL_DEFINITIONS[name] for name in role.tools_for(reviewing=bool(call.review_of))
            ],
            max_tokens=role.max_tokens,
            role=call.role,
            cache_prefix=True,
        )
        budget = context_budget(self.settings, call.role)
        upstream = [UpstreamFile(a.path, a.task_id, a.content) for a in context.upstream]
        if self.settings.provider.context_management and upstream:
            upstream = await self._fit_upstream(call, context, request, budget, assignment, spent)
        messages = _conversation(call, context, upstream, assignment)
        if self.settings.provider.context_management:
            ratio = self.estimator.ratio(request.model)
            messages = elide_large_inputs(messages, int(budget / ELIDE_SHARE * ratio))
            messages = await self._fit_history(request, messages, budget)
        return request.model_copy(update={"messages": mark_last_message(messages)})

    async def _fit_upstream(
        self,
        call: ModelCallInput,
        context: storage.TurnContext,
        request: ModelRequest,
        budget: int,
        assignment: str,
        spent: Spent,
    ) -> list[UpstreamFile]:
        """Whole artifacts where they fit; the largest replaced by their stored summaries."""
        model = request.model
        bare = _conversation(call, context, [], assignment)[:1]
        fixed = self.estimator.tokens(
            request.model_copy(update={"messages": bare}).wire_chars(), model
        )
        sizes = [self.estimator.tokens(len(a.content), model) for a in context.upstream]
        chosen = choose_summaries(
            sizes, upstream_allowance(budget, fixed), self.settings.provider.summary_tokens
        )
        files = []
        for index, artifact in enumerate(context.upstream):
            content = artifact.content
            if index in chosen:
                summary = await self.summarizer.summary(
                    artifact, key=call.key, tenant=call.tenant, spent=spent
                )
                content = render_summary(artifact, summary, sizes[index])
                log.info("upstream artifact summarized", path=artifact.path, tokens=sizes[index])
            files.append(UpstreamFile(artifact.path, artifact.task_id, content))
        return files

    async def _fit_history(
        self, request: ModelRequest, messages: list[Message], budget: int
    ) -> list[Message]:
        """Drop the agent's oldest turns while the request is over budget."""
        model = request.model

        def count(candidate: list[Message]) -> int:
            chars = request.model_copy(update={"messages": candidate}).wire_chars()
            return self.estimator.tokens(chars, model)

        messages, dropped = trim_history(messages, budget, count)
        counter = self.provider
        if isinstance(counter, TokenCounter) and count(messages) > EXACT_COUNT_ABOVE * budget:
            # Near the limit the estimate is not good enough: ask the provider, and let the
            # exact figure recalibrate the estimate before trimming again.
            candidate = request.model_copy(update={"messages": messages})
            exact = await counter.count_tokens(candidate)
            if exact is not None:
                self.estimator.observe(model, candidate.wire_chars(), Usage(input_tokens=exact))
                messages, dropped = trim_history(messages, budget, count)
        if dropped:
            log.info("agent history trimmed", turns_dropped=dropped, budget=budget)
        return messages

    async def _paid_call(self, request: ModelRequest, key: TurnKey, tenant: str) -> LedgerEntry:
        """One provider call, recorded in the ledger (once) and in metrics and logs."""
        started = time.monotonic()
        response = await _with_heartbeats(self._complete(request))
        seconds = time.monotonic() - started
        self.estimator.observe(response.model, request.wire_chars(), response.usage)
        entry = await storage.record_model_call(
            self.db,
            key,
            tenant=tenant,
            role=request.role,
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
            cache_read_tokens=entry.cache_read_tokens,
            cache_write_tokens=entry.cache_write_tokens,
            cost_usd=entry.cost_usd,
            stop_reason=entry.stop_reason,
        )
        metrics.record_model_call(
            tenant=tenant,
            role=request.role,
            model=entry.model,
            provider=entry.provider,
            seconds=seconds,
            usage=storage.entry_usage(entry),
            cost=entry.cost_usd,
        )
        return entry

    async def _cache_hit(self, call: ModelCallInput, earlier: LedgerEntry) -> LedgerEntry:
        """Record the stored answer as this turn's, at no cost."""
        log.info("model call answered from the response cache", cached_from=earlier.run_id)
        return await storage.record_model_call(
            self.db,
            call.key,
            tenant=call.tenant,
            role=call.role,
            provider=self.provider.name,
            model=earlier.model,
            usage=Usage(),
            cost_usd=0.0,
            stop_reason=earlier.stop_reason,
            response_json=earlier.response,
            response_cache_hit=True,
        )

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


async def _with_heartbeats(work: Coroutine[Any, Any, T]) -> T:
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


def _conversation(
    call: ModelCallInput,
    context: storage.TurnContext,
    upstream: list[UpstreamFile],
    assignment: str,
) -> list[Message]:
    first = task_message_blocks(
        goal=call.goal,
        task_id=call.key.task_id,
        role=call.role,
        description=call.description,
        upstream=upstream,
        feedback=call.feedback,
        review_of=call.review_of,
        assignment=assignment,
    )
    return build_messages(
        first,
        [response_from_json(entry.response) for entry in context.earlier_calls],
        [tool_results_from_json(entry.results) for entry in context.earlier_results],
        notes=call.notes,
        peers=call.peers,
    )


def _resolved(provider: LLMProvider, request: ModelRequest) -> ModelRequest:
    """The request as the provider sends it (per-role model and limits applied)."""
    resolve = getattr(provider, "resolve", None)
    return resolve(request) if resolve is not None else request


def _result(entry: LedgerEntry, *, replayed: bool, spent: Spent | None = None) -> ModelCallResult:
    """The turn's outcome; its usage and cost include summaries paid for to prepare it."""
    response = response_from_json(entry.response)
    spent = spent or Spent()
    return ModelCallResult(
        stop_reason=entry.stop_reason,
        tool_calls=len(response.tool_uses),
        usage=storage.entry_usage(entry) + spent.usage,
        cost_usd=entry.cost_usd + spent.cost_usd,
        response_cache_hit=entry.response_cache_hit,
        summaries=spent.calls,
        model=entry.model,
        provider=entry.provider,
        text=response.text[:2000],
        replayed=replayed,
    )
