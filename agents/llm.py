"""Choose the LLM provider from settings."""

from __future__ import annotations

from agents.protocol import LLMProvider
from core.settings import Settings


class ProviderConfigError(ValueError):
    pass


def make_provider(settings: Settings) -> LLMProvider:
    name = settings.resolved_provider
    if name == "offline":
        from agents.providers.offline import OfflineProvider

        return OfflineProvider(
            latency_seconds=settings.offline_latency_seconds, call_log=settings.offline_call_log
        )
    if name == "anthropic":
        if not settings.anthropic_api_key:
            raise ProviderConfigError("LLM_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        from agents.providers.anthropic import AnthropicProvider

        return AnthropicProvider(
            api_key=settings.anthropic_api_key,
            model=settings.llm_model or "claude-sonnet-4-6",
            base_url=settings.anthropic_base_url,
        )
    raise ProviderConfigError(f"unknown LLM_PROVIDER {name!r}; use 'anthropic' or 'offline'")
