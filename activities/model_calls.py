"""The model-call activity: one turn of one agent, recorded in the ledger exactly once.

`call_model` reads the ledger first (a turn recorded before is replayed, never paid
twice), checks the budget, builds the request fitted to the role's context budget
(`agents.request`), looks it up in the tenant's response cache (an identical earlier
request is answered from the ledger at no cost), and only then pays the provider.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from functools import partial

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeat_throughout
from activities.summaries import Spent, Summarizer
from activities.workspace import WorkspaceActivities
from agents.commands import COMMAND_TOOL
from agents.context import TEST_COMMAND_LINE
from agents.context_window import TokenEstimator
from agents.conversation import response_from_json, response_json
from agents.llm import cheap_model
from agents.protocol import LLMProvider, ModelRequest, ModelResponse, ProviderError
from agents.providers.errors import provider_retry_delay
from agents.repomap import RepoOutline, render_map
from agents.request import RequestBuilder
from agents.roles import Sandbox
from checks.stack import sandbox_stack
from core.contracts import (
    BUDGET_EXCEEDED_ERROR,
    CALL_MODEL,
    ModelCallInput,
    ModelCallResult,
    TurnKey,
    Usage,
)
from core.infrastructure import metrics
from core.infrastructure.logs import get_logger
from core.infrastructure.settings import ProviderSettings
from core.persistence import repositories, reuse, storage
from core.persistence.db import Database, LedgerEntry
from core.persistence.ledger import TurnContexts
from core.persistence.spending_guard import SpendingGuard

log = get_logger(__name__)


class ModelActivities:
    def __init__(
        self,
        db: Database,
        provider: LLMProvider,
        settings: ProviderSettings | None = None,
        *,
        tools: WorkspaceActivities | None = None,
    ) -> None:
        self.db = db
        self.provider = provider
        self.settings = settings or ProviderSettings()
        self.tools = tools
        """Runs an answer's tool calls here when the call asks and none is a command."""
        self.estimator = TokenEstimator()
        self.outlines: dict[str, RepoOutline] = {}
        self.contexts = TurnContexts()
        """Each task attempt's conversation so far: a turn reads only the rows added since."""
        self.spending = SpendingGuard()
        self.requests = RequestBuilder(
            provider, self.settings, self.estimator, sandbox=checks_sandbox()
        )
        self.summarizer = Summarizer(
            db,
            self._paid_call,
            model=self.settings.summary_model or cheap_model(provider),
            max_tokens=self.settings.summary_tokens,
            estimator=self.estimator,
        )

    @activity.defn(name=CALL_MODEL)
    async def call_model(self, call: ModelCallInput) -> ModelCallResult:
        """One turn, heartbeating from start to end (a killed worker's call moves on within
        the plan's heartbeat timeout; a stopping worker's fails over at once)."""
        async with heartbeat_throughout():
            result, response = await self._call(call)
            if call.tools and self.tools and result.tool_calls and not result.commands:
                batch = call.tools.model_copy(update={"model": result.model})
                result.tool_results = await self.tools.run_turn_tools(batch, response)
            return result

    async def _call(self, call: ModelCallInput) -> tuple[ModelCallResult, ModelResponse]:
        """The turn's outcome, and the answer it records (the turn's tools run on it)."""
        context = await self.contexts.get(self.db, call.key, [ref.id for ref in call.upstream])
        if context.recorded is not None:
            # The call completed before (e.g. the worker died before reporting it): reuse it.
            log.info("model call answered from the ledger", model=context.recorded.model)
            return _result(context.recorded, replayed=True)

        await self._check_budget(call)

        spent = Spent()
        summarize = partial(self.summarizer.summary, key=call.key, tenant=call.tenant, spent=spent)
        repository_map = await self._repository_map(call)
        request = await self.requests.build(call, context, summarize, repository_map=repository_map)

        fingerprint = ""
        if call.response_cache and self.settings.response_cache_enabled:
            fingerprint = _resolved(self.provider, request).fingerprint(self.provider.name)
            earlier = await reuse.cached_response(self.db, call.tenant, fingerprint)
            if earlier is not None:
                return _result(await self._cache_hit(call, earlier), replayed=False, spent=spent)

        entry = await self._paid_call(request, call.key, call.tenant)
        if fingerprint and entry.id is not None and entry.stop_reason != "max_tokens":
            await reuse.remember_response(self.db, call.tenant, fingerprint, entry.id)
        return _result(entry, replayed=False, spent=spent)

    async def _repository_map(self, call: ModelCallInput) -> str:
        """A change run's repository map, ranked for this task; "" for a greenfield run.

        The outline was parsed once at import; it is kept here per snapshot, so a turn only
        ranks and renders it.
        """
        if call.repository is None:
            return ""
        outline = self.outlines.get(call.repository)
        if outline is None:
            snapshot = await repositories.get_snapshot(self.db, call.repository)
            if snapshot is None or snapshot.outline is None:
                return ""
            outline = self.outlines[call.repository] = RepoOutline.model_validate_json(
                snapshot.outline
            )
        query = f"{call.goal}\n{call.description}\n{call.feedback}"
        found = render_map(outline, query, self.settings.repository_map_tokens)
        if call.test_command:
            found += f"\n\n{TEST_COMMAND_LINE}`{call.test_command}`"
        return found

    async def _check_budget(self, call: ModelCallInput) -> None:
        """Checked before every call, from the ledger: a paused run never spends past it."""
        problem = await self.spending.problem(
            self.db,
            tenant=call.tenant,
            workflow_id=call.key.workflow_id,
            run_tokens=call.budget_tokens,
            run_usd=call.budget_usd,
        )
        if problem is not None:
            log.warning("budget spent: model call not made", reason=problem)
            raise ApplicationError(problem, type=BUDGET_EXCEEDED_ERROR, non_retryable=True)

    async def _paid_call(self, request: ModelRequest, key: TurnKey, tenant: str) -> LedgerEntry:
        """One provider call, recorded in the ledger (once) and in metrics and logs."""
        started = time.monotonic()
        response = await self._complete(request)
        seconds = time.monotonic() - started
        self.estimator.observe(response.model, request.wire_chars(), response.usage)
        # Shielded: a cancel (worker shutdown) must not lose a call that was paid for.
        record = storage.record_model_call(
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
        entry = await asyncio.shield(record)
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
                # The workflow retries a dead worker's call at once; a provider's failure
                # waits as the provider asked, or backs off.
                next_retry_delay=timedelta(
                    seconds=provider_retry_delay(activity.info().attempt, exc.retry_after)
                ),
            ) from exc


def checks_sandbox() -> Sandbox:
    """What the sandbox offers generated code, read from this worker's environment: the
    checks worker's own where one process serves every queue (the local default) or both
    workers run the same environment."""
    stack = sandbox_stack()
    return Sandbox(python=stack.python, packages=tuple(stack.packages.items()))


def _resolved(provider: LLMProvider, request: ModelRequest) -> ModelRequest:
    """The request as the provider sends it (per-role model and limits applied)."""
    resolve = getattr(provider, "resolve", None)
    return resolve(request) if resolve is not None else request


def _result(
    entry: LedgerEntry, *, replayed: bool, spent: Spent | None = None
) -> tuple[ModelCallResult, ModelResponse]:
    """The turn's outcome, its usage and cost including summaries paid for to prepare it;
    and the answer it recorded."""
    response = response_from_json(entry.response)
    spent = spent or Spent()
    outcome = ModelCallResult(
        stop_reason=entry.stop_reason,
        tool_calls=len(response.tool_uses),
        commands=sum(call.name == COMMAND_TOOL for call in response.tool_uses),
        usage=storage.entry_usage(entry) + spent.usage,
        cost_usd=entry.cost_usd + spent.cost_usd,
        response_cache_hit=entry.response_cache_hit,
        summaries=spent.calls,
        model=entry.model,
        provider=entry.provider,
        text=response.text[:2000],
        replayed=replayed,
    )
    return outcome, response
