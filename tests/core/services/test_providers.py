"""The provider factory (`core.services.providers.make_provider`): provider settings become
the right adapter, with per-role models and output limits, or a clear refusal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agents.llm import ProviderConfigError, RoleOverrides
from agents.providers.anthropic import AnthropicProvider
from agents.providers.openai_compat import OpenAICompatibleProvider
from core.contracts import Usage
from core.infrastructure.settings import ProviderSettings, Settings
from core.services.providers import make_provider
from offline import OfflineProvider
from tests.agents.wire_formats import ask
from tests.fakes.openai_api import FakeOpenAIAPI

pytestmark = pytest.mark.timeout(30)

MODEL = "llama3.1:8b"


@pytest.fixture
def local_server() -> Iterator[FakeOpenAIAPI]:
    with FakeOpenAIAPI() as fake:
        yield fake


def settings(**values: object) -> ProviderSettings:
    """Provider settings from these values only: no environment, no .env file."""
    return Settings.model_validate(values).provider


async def test_make_provider_builds_the_openai_provider_from_settings(
    local_server: FakeOpenAIAPI,
) -> None:
    provider = make_provider(
        settings(
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=local_server.base_url,
            LLM_MODEL=MODEL,
            MODEL_PRICING={MODEL: {"input": 1.0, "output": 2.0}},
        )
    )
    assert isinstance(provider, OpenAICompatibleProvider)
    try:
        response = await provider.complete(ask("", model=""))
    finally:
        await provider.aclose()

    assert local_server.requests[0].json["model"] == MODEL
    assert "authorization" not in local_server.requests[0].headers
    assert provider.cost_usd(response.model, Usage(input_tokens=10**6, output_tokens=10**6)) == 3.0


def test_make_provider_on_openais_own_api_defaults_the_model_and_needs_a_key() -> None:
    provider = make_provider(settings(LLM_PROVIDER="openai", OPENAI_API_KEY="sk-x"))

    assert isinstance(provider, OpenAICompatibleProvider)
    assert provider.default_model == "gpt-4.1"
    assert provider.base_url == "https://api.openai.com/v1"
    with pytest.raises(ProviderConfigError, match="needs OPENAI_API_KEY"):
        make_provider(settings(LLM_PROVIDER="openai"))


def test_make_provider_refuses_bad_settings() -> None:
    with pytest.raises(ProviderConfigError, match="needs LLM_MODEL"):
        make_provider(settings(LLM_PROVIDER="openai", OPENAI_BASE_URL="http://127.0.0.1:1/v1"))
    with pytest.raises(ProviderConfigError, match=r"unknown LLM_PROVIDER 'gemini'.*openai"):
        make_provider(settings(LLM_PROVIDER="gemini"))
    with pytest.raises(ProviderConfigError, match=r"MODEL_PRICING\['local'\]: output"):
        make_provider(
            settings(
                LLM_PROVIDER="anthropic",
                ANTHROPIC_API_KEY="k",
                MODEL_PRICING={"local": {"input": 1.0}},
            )
        )
    with pytest.raises(ProviderConfigError, match="LLM_ROLE_MODELS names unknown roles: wizard"):
        make_provider(
            settings(
                LLM_PROVIDER="anthropic",
                ANTHROPIC_API_KEY="k",
                LLM_ROLE_MODELS={"wizard": "claude-opus-4-5"},
            )
        )
    with pytest.raises(ProviderConfigError, match="at least 1 token; not so for: tech_lead"):
        make_provider(
            settings(
                LLM_PROVIDER="anthropic",
                ANTHROPIC_API_KEY="k",
                LLM_ROLE_MAX_TOKENS={"tech_lead": 0},
            )
        )


def test_role_settings_are_read_from_the_environment_as_json(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LLM_ROLE_MODELS", '{"backend_engineer": "gpt-4.1"}')
    monkeypatch.setenv("LLM_ROLE_MAX_TOKENS", '{"backend_engineer": 32000}')
    monkeypatch.setenv("MODEL_PRICING", '{"my-model": {"input": 1, "output": 2}}')

    loaded = Settings(_env_file=None)

    assert loaded.provider.llm_role_models == {"backend_engineer": "gpt-4.1"}
    assert loaded.provider.llm_role_max_tokens == {"backend_engineer": 32000}
    assert loaded.provider.model_pricing == {"my-model": {"input": 1.0, "output": 2.0}}


def test_no_role_settings_no_wrapper_and_offline_is_never_wrapped() -> None:
    plain = make_provider(settings(LLM_PROVIDER="anthropic", ANTHROPIC_API_KEY="k"))
    offline = make_provider(
        settings(LLM_PROVIDER="offline", LLM_ROLE_MODELS={"tech_lead": "claude-opus-4-5"})
    )

    assert isinstance(plain, AnthropicProvider)
    assert isinstance(offline, OfflineProvider)


async def test_role_models_and_max_tokens_reach_the_wire(local_server: FakeOpenAIAPI) -> None:
    provider = make_provider(
        settings(
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=local_server.base_url,
            LLM_MODEL=MODEL,
            LLM_ROLE_MODELS={"backend_engineer": "qwen2.5-coder:32b"},
            LLM_ROLE_MAX_TOKENS={"backend_engineer": 32000, "tech_lead": 2048},
        )
    )
    assert isinstance(provider, RoleOverrides)
    assert (provider.name, provider.default_model) == ("openai", MODEL)
    try:
        # the deployment's default model (what the activity asks for when nothing else was
        # chosen) gives way to the role's model
        backend = await provider.complete(ask("hi", model=MODEL, role="backend_engineer"))
        await provider.complete(ask("hi", model="", role="backend_engineer"))
        # a model chosen for the run or the task wins over the role's model
        await provider.complete(ask("hi", model="llama3.3:70b", role="backend_engineer"))
        # other roles keep the default model; their own limit applies
        await provider.complete(ask("hi", model=MODEL, role="tech_lead"))
        await provider.complete(ask("hi", model=MODEL, role="business_analyst"))
    finally:
        await provider.aclose()

    assert provider.model_for("backend_engineer") == "qwen2.5-coder:32b"
    assert provider.model_for("backend_engineer", "llama3.3:70b") == "llama3.3:70b"
    assert provider.model_for("tech_lead") == MODEL
    sent = [(body["model"], body["max_tokens"]) for body in local_server.bodies]
    assert sent == [
        ("qwen2.5-coder:32b", 32000),
        ("qwen2.5-coder:32b", 32000),
        ("llama3.3:70b", 32000),
        (MODEL, 2048),
        (MODEL, 1024),
    ]
    assert backend.model == "qwen2.5-coder:32b"
