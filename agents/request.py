"""The request of one agent turn, fitted to its role's context budget.

The role's prompt, tools and task message come first; then, with context management on,
the largest upstream artifacts are replaced by their summaries, large arguments of the
agent's earlier tool calls are elided and its oldest turns dropped (`agents.context_window`
decides which). Near the budget the provider's exact token count is asked for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

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
from agents.conversation import build_messages, response_from_json, tool_results_from_json
from agents.llm import context_budget, prompt_caching
from agents.protocol import LLMProvider, Message, ModelRequest, TokenCounter
from agents.roles import Sandbox, get_role, own_prompt, team_handbook
from agents.tools import TOOL_DEFINITIONS
from core.contracts import VALIDATOR_ROLE, ModelCallInput, Usage, breakdown_block
from core.infrastructure.logs import get_logger
from core.infrastructure.settings import ProviderSettings
from core.persistence.db import Artifact
from core.persistence.storage import TurnContext

EXACT_COUNT_ABOVE = 0.8
"""Share of the context budget above which the provider's exact token count is asked for."""

Summarize = Callable[[Artifact], Awaitable[str]]
"""The stored summary of an upstream artifact (written, and paid for, if nobody has yet)."""

log = get_logger(__name__)


class RequestBuilder:
    def __init__(
        self,
        provider: LLMProvider,
        settings: ProviderSettings,
        estimator: TokenEstimator,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.provider = provider
        self.settings = settings
        self.estimator = estimator
        self.sandbox = sandbox
        """What generated code can use where it runs; every system prompt says it."""

    async def build(
        self,
        call: ModelCallInput,
        context: TurnContext,
        summarize: Summarize,
        *,
        repository_map: str = "",
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
            system=team_handbook(self.sandbox) if shared else own_prompt(role, self.sandbox),
            messages=[],
            tools=[
                TOOL_DEFINITIONS[name]
                for name in role.tools_for(
                    reviewing=bool(call.review_of), planning=call.work_breakdown is not None
                )
            ],
            max_tokens=role.max_tokens,
            role=call.role,
            cache_prefix=True,
        )
        budget = context_budget(self.settings, call.role)
        upstream = [UpstreamFile(a.path, a.task_id, a.content) for a in context.upstream]
        if self.settings.context_management and upstream:
            first = conversation(call, context, [], assignment, repository_map)[:1]
            allowance = upstream_allowance(budget, self._tokens(request, first))
            upstream = await self._fit_upstream(context, request.model, allowance, summarize)
        messages = conversation(call, context, upstream, assignment, repository_map)
        if self.settings.context_management:
            ratio = self.estimator.ratio(request.model)
            messages = elide_large_inputs(messages, int(budget / ELIDE_SHARE * ratio))
            messages = await self._fit_history(request, messages, budget)
        return request.model_copy(update={"messages": mark_last_message(messages)})

    def _tokens(self, request: ModelRequest, messages: list[Message]) -> int:
        """The estimated size of `request` with these messages."""
        chars = request.model_copy(update={"messages": messages}).wire_chars()
        return self.estimator.tokens(chars, request.model)

    async def _fit_upstream(
        self, context: TurnContext, model: str, allowance: int, summarize: Summarize
    ) -> list[UpstreamFile]:
        """Whole artifacts where they fit `allowance`; the largest replaced by their summaries."""
        sizes = [self.estimator.tokens(len(a.content), model) for a in context.upstream]
        chosen = choose_summaries(sizes, allowance, self.settings.summary_tokens)
        files = []
        for index, artifact in enumerate(context.upstream):
            content = artifact.content
            if index in chosen:
                content = render_summary(artifact, await summarize(artifact), sizes[index])
                log.info("upstream artifact summarized", path=artifact.path, tokens=sizes[index])
            files.append(UpstreamFile(artifact.path, artifact.task_id, content))
        return files

    async def _fit_history(
        self, request: ModelRequest, messages: list[Message], budget: int
    ) -> list[Message]:
        """Drop the agent's oldest turns while the request is over budget."""

        def count(candidate: list[Message]) -> int:
            return self._tokens(request, candidate)

        messages, dropped = trim_history(messages, budget, count)
        counter = self.provider
        if isinstance(counter, TokenCounter) and count(messages) > EXACT_COUNT_ABOVE * budget:
            # Near the limit the estimate is not good enough: ask the provider, and let the
            # exact figure recalibrate the estimate before trimming again.
            candidate = request.model_copy(update={"messages": messages})
            exact = await counter.count_tokens(candidate)
            if exact is not None:
                self.estimator.observe(
                    request.model, candidate.wire_chars(), Usage(input_tokens=exact)
                )
                messages, dropped = trim_history(messages, budget, count)
        if dropped:
            log.info("agent history trimmed", turns_dropped=dropped, budget=budget)
        return messages


def conversation(
    call: ModelCallInput,
    context: TurnContext,
    upstream: list[UpstreamFile],
    assignment: str,
    repository_map: str = "",
) -> list[Message]:
    """The task message with these upstream files, then the agent's turns so far."""
    first = task_message_blocks(
        goal=call.goal,
        task_id=call.key.task_id,
        role=call.role,
        description=call.description,
        upstream=upstream,
        feedback=call.feedback,
        review_of=call.review_of,
        assignment=assignment,
        repository_map=repository_map,
        work_breakdown=breakdown_block(call.work_breakdown) if call.work_breakdown else "",
    )
    # A turn that called no tools has no results row: results are matched by turn, since
    # a turn that ended and was answered by a follow-up may come before ones that did.
    results = {entry.turn: entry.results for entry in context.earlier_results}
    return build_messages(
        first,
        [response_from_json(entry.response) for entry in context.earlier_calls],
        [
            tool_results_from_json(results[entry.turn]) if entry.turn in results else []
            for entry in context.earlier_calls
        ],
        notes=call.notes,
        peers=call.peers,
        followups=call.followups,
    )


def render_summary(artifact: Artifact, summary: str, tokens: int) -> str:
    """What an agent sees instead of an oversized artifact."""
    return (
        f"[Summary of {artifact.path} ({artifact.size} bytes, about {tokens} tokens), which is "
        f"too large for your context budget; read_file {artifact.path!r} returns the start of "
        f"its exact text.]\n\n{summary}"
    )
