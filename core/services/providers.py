"""Which model provider this deployment uses, built from its settings.

The one place that knows every provider: the Anthropic and OpenAI-compatible adapters and
the offline model. Workers, the API (for prices) and the CLI call `make_provider`.
"""

from __future__ import annotations

from agents.llm import ProviderConfigError, check_context_settings, pricing, with_role_overrides
from agents.protocol import LLMProvider
from core.infrastructure.settings import ProviderSettings
from offline import OfflineProvider

PROVIDERS = ("anthropic", "openai", "offline")


def make_provider(settings: ProviderSettings) -> LLMProvider:
    check_context_settings(settings)
    name = settings.resolved_provider
    if name == "offline":
        # The offline model plays every role itself; per-role models and limits mean nothing
        # to it, and it costs nothing.
        return OfflineProvider(
            latency_seconds=settings.offline_latency_seconds,
            call_log=settings.offline_call_log,
            command_pause_seconds=settings.offline_command_pause_seconds,
        )
    provider: LLMProvider
    if name == "anthropic":
        # The SDKs are imported only by the deployment that uses them: together they take
        # ~2 s to import, which a restarted offline worker would wait before it serves.
        from agents.providers.anthropic import AnthropicProvider

        if not settings.anthropic_api_key:
            raise ProviderConfigError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        provider = AnthropicProvider(
            api_key=settings.anthropic_api_key.get_secret_value(),
            model=settings.llm_model or "claude-sonnet-4-6",
            base_url=settings.anthropic_base_url,
            pricing=pricing(settings),
        )
    elif name == "openai":
        provider = _openai_provider(settings)
    else:
        raise ProviderConfigError(
            f"unknown LLM_PROVIDER {name!r}; use one of: {', '.join(PROVIDERS)}"
        )
    return with_role_overrides(provider, settings)


def _openai_provider(settings: ProviderSettings) -> LLMProvider:
    from agents.providers.openai_compat import (
        DEFAULT_OPENAI_MODEL,
        OpenAICompatibleProvider,
        is_openai_platform,
    )

    base_url = settings.openai_base_url
    api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if is_openai_platform(base_url):
        if not api_key:
            raise ProviderConfigError(
                "LLM_PROVIDER=openai needs OPENAI_API_KEY for api.openai.com, or OPENAI_BASE_URL "
                "for another OpenAI-compatible endpoint"
            )
        model = settings.llm_model or DEFAULT_OPENAI_MODEL
    elif settings.llm_model:
        model = settings.llm_model
    else:
        raise ProviderConfigError(
            f"LLM_PROVIDER=openai with OPENAI_BASE_URL={base_url} needs LLM_MODEL: the name "
            "of a model that endpoint serves (e.g. llama3.1:8b on Ollama)"
        )
    return OpenAICompatibleProvider(
        model=model,
        api_key=api_key,
        base_url=base_url,
        pricing=pricing(settings),
        max_tokens_field=settings.openai_max_tokens_field,
    )
