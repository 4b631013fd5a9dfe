"""What every provider shares: context budgets, prices from settings, per-role overrides."""

from __future__ import annotations

from collections.abc import Mapping

from agents.pricing import PriceTable, PricingError
from agents.protocol import LLMProvider, ModelRequest, ModelResponse, TokenCounter
from agents.roles import ROLES, get_role
from core.contracts import Usage
from core.infrastructure.settings import ProviderSettings


class ProviderConfigError(ValueError):
    pass


def cheap_model(provider: LLMProvider) -> str:
    """The provider's inexpensive model for side work (summaries); else its default."""
    return str(getattr(provider, "cheap_model", "") or provider.default_model)


def prompt_caching(provider: LLMProvider) -> bool:
    """Whether the provider caches marked request prefixes (Anthropic does)."""
    return bool(getattr(provider, "prompt_caching", False))


def context_budget(settings: ProviderSettings, role: str) -> int:
    """Input tokens one model call of `role` may send."""
    return (
        settings.llm_role_context_tokens.get(role)
        or settings.llm_context_tokens
        or get_role(role).context_tokens
    )


def check_context_settings(settings: ProviderSettings) -> None:
    unknown = sorted(set(settings.llm_role_context_tokens) - set(ROLES))
    if unknown:
        raise ProviderConfigError(
            f"LLM_ROLE_CONTEXT_TOKENS names unknown roles: {', '.join(unknown)}; "
            f"known roles: {', '.join(ROLES)}"
        )
    limits = {"LLM_CONTEXT_TOKENS": settings.llm_context_tokens} | {
        f"LLM_ROLE_CONTEXT_TOKENS[{role}]": limit
        for role, limit in settings.llm_role_context_tokens.items()
    }
    too_small = sorted(name for name, limit in limits.items() if limit is not None and limit < 1000)
    if too_small:
        raise ProviderConfigError(
            f"context budgets must be at least 1000 tokens; not so for: {', '.join(too_small)}"
        )


def pricing(settings: ProviderSettings) -> PriceTable:
    try:
        return PriceTable.from_settings(settings.model_pricing)
    except PricingError as exc:
        raise ProviderConfigError(str(exc)) from None


def with_role_overrides(provider: LLMProvider, settings: ProviderSettings) -> LLMProvider:
    """``provider`` with LLM_ROLE_MODELS and LLM_ROLE_MAX_TOKENS applied, if any are set."""
    models = settings.llm_role_models
    max_tokens = settings.llm_role_max_tokens
    for setting, roles in (("LLM_ROLE_MODELS", models), ("LLM_ROLE_MAX_TOKENS", max_tokens)):
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ProviderConfigError(
                f"{setting} names unknown roles: {', '.join(unknown)}; "
                f"known roles: {', '.join(ROLES)}"
            )
    empty = sorted(role for role, model in models.items() if not model.strip())
    if empty:
        raise ProviderConfigError(f"LLM_ROLE_MODELS has an empty model for: {', '.join(empty)}")
    too_small = sorted(role for role, limit in max_tokens.items() if limit < 1)
    if too_small:
        raise ProviderConfigError(
            f"LLM_ROLE_MAX_TOKENS must be at least 1 token; not so for: {', '.join(too_small)}"
        )
    if not models and not max_tokens:
        return provider
    return RoleOverrides(provider, models=models, max_tokens=max_tokens)


class RoleOverrides:
    """A provider with a per-role model and output limit, chosen by the request's ``role``.

    The role's model replaces the deployment's default model (``LLM_MODEL``, else the
    provider's default); a model named for the run (``--model``, the template's
    ``settings.model``) or for the task (the template's ``model:``, ``modify_task``) that
    differs from the default is an explicit choice and wins. The role's limit replaces the
    role's built-in ``max_tokens`` (``agents.roles``).
    """

    def __init__(
        self,
        provider: LLMProvider,
        *,
        models: Mapping[str, str],
        max_tokens: Mapping[str, int],
    ) -> None:
        self.provider = provider
        self.name = provider.name
        self.default_model = provider.default_model
        self.cheap_model = cheap_model(provider)
        self.prompt_caching = prompt_caching(provider)
        self.models = dict(models)
        self.max_tokens = dict(max_tokens)

    def model_for(self, role: str, requested: str = "") -> str:
        """The model a call of ``role`` that asked for ``requested`` (or nothing) goes to."""
        if requested and requested != self.default_model:
            return requested
        return self.models.get(role) or requested or self.default_model

    def resolve(self, request: ModelRequest) -> ModelRequest:
        """The request as the provider gets it."""
        changes: dict[str, object] = {}
        model = self.model_for(request.role, request.model)
        if model != request.model:
            changes["model"] = model
        limit = self.max_tokens.get(request.role)
        if limit is not None:
            changes["max_tokens"] = limit
        return request.model_copy(update=changes) if changes else request

    async def complete(self, request: ModelRequest) -> ModelResponse:
        return await self.provider.complete(self.resolve(request))

    def cost_usd(self, model: str, usage: Usage) -> float:
        return self.provider.cost_usd(model, usage)

    async def count_tokens(self, request: ModelRequest) -> int | None:
        if isinstance(self.provider, TokenCounter):
            return await self.provider.count_tokens(self.resolve(request))
        return None

    async def aclose(self) -> None:
        close = getattr(self.provider, "aclose", None)
        if close is not None:
            await close()
