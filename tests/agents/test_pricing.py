"""One price table for every provider, each kind of token at its own rate, MODEL_PRICING on top."""

from __future__ import annotations

import pytest

import agents.providers.anthropic as anthropic_provider
from agents import pricing
from agents.pricing import (
    FREE,
    PRICING,
    ModelPrice,
    PriceTable,
    PricingError,
    cost_usd,
    parse_overrides,
    price_usd,
)
from agents.providers.anthropic import AnthropicProvider
from agents.providers.openai_compat import OpenAICompatibleProvider
from core.contracts import Usage
from core.infrastructure.settings import Settings
from core.services.providers import make_provider

MILLION = 1_000_000
# One million tokens of each kind, so a cost reads as the sum of the four rates it used.
EACH_KIND = {
    "input": Usage(input_tokens=MILLION),
    "output": Usage(output_tokens=MILLION),
    "cache_write": Usage(cache_creation_input_tokens=MILLION),
    "cache_read": Usage(cache_read_input_tokens=MILLION),
}


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "claude-opus-4-5", "gpt-4o", "gpt-5-mini"])
@pytest.mark.parametrize("kind", sorted(EACH_KIND))
def test_each_kind_of_token_is_charged_at_its_own_rate(model: str, kind: str) -> None:
    price = PriceTable().lookup(model)
    assert price is not None

    assert cost_usd(price, EACH_KIND[kind]) == pytest.approx(getattr(price, kind))


def test_cache_reads_are_cheaper_than_input_and_anthropic_cache_writes_dearer() -> None:
    for key, price in PRICING.items():
        assert price.cache_read < price.input, key
        if key.startswith("claude"):
            assert price.cache_write > price.input, key
        else:
            assert price.cache_write == price.input, key  # OpenAI: writing the cache is free


def test_mixed_usage_adds_up_without_overlap() -> None:
    usage = Usage(
        input_tokens=1_000,
        output_tokens=2_000,
        cache_creation_input_tokens=4_000,
        cache_read_input_tokens=10_000,
    )
    # sonnet: 1000*3 + 2000*15 + 4000*3.75 + 10000*0.30 = 51,000 USD per million tokens
    assert price_usd("claude-sonnet-4-5-20250929", usage) == pytest.approx(0.051)
    # opus 4.1: 1000*15 + 2000*75 + 4000*18.75 + 10000*1.50 = 255,000
    assert price_usd("claude-opus-4-1", usage) == pytest.approx(0.255)
    # haiku 3.5: 1000*0.80 + 2000*4 + 4000*1.00 + 10000*0.08 = 13,600
    assert price_usd("claude-3-5-haiku-20241022", usage) == pytest.approx(0.0136)
    # gpt-4o: 1000*2.50 + 2000*10 + 4000*2.50 + 10000*1.25 = 45,000
    assert cost_usd(PRICING["gpt-4o"], usage) == pytest.approx(0.045)
    assert price_usd("some-future-model", usage) == price_usd("claude-sonnet-4-5", usage)
    assert price_usd("claude-sonnet-4-5", Usage()) == 0.0


@pytest.mark.parametrize(
    ("model", "key"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o"),
        ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
        ("openai/gpt-4.1-mini", "gpt-4.1-mini"),
        ("gpt-5", "gpt-5"),
        ("gpt-5-nano-2025-08-07", "gpt-5-nano"),
        ("o3-mini", "o3-mini"),
        ("o3-2025-04-16", "o3"),
        ("anthropic/claude-sonnet-4.5", "claude-sonnet"),
        ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "claude-3-5-haiku"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
        ("claude-opus-4-1", "claude-opus"),
        ("CLAUDE-HAIKU-4-5", "claude-haiku"),
    ],
)
def test_the_longest_whole_word_key_wins(model: str, key: str) -> None:
    assert PriceTable().lookup(model) == PRICING[key]


def test_price_prefers_most_specific_key() -> None:
    assert PRICING["claude-opus-4-5"].input < PRICING["claude-opus"].input
    usage = Usage(input_tokens=1_000_000)
    assert price_usd("claude-opus-4-5-20251101", usage) == PRICING["claude-opus-4-5"].input
    assert price_usd("claude-opus-4-20250514", usage) == PRICING["claude-opus"].input
    assert price_usd("claude-haiku-4-5", usage) == PRICING["claude-haiku"].input
    bedrock_id = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
    assert price_usd(bedrock_id, usage) == PRICING["claude-3-5-haiku"].input
    assert price_usd("haiku-finetune", usage) == PRICING["claude-haiku"].input


@pytest.mark.parametrize(
    "model", ["gpt-4o3", "gpt-4.10", "llama3.1:8b", "qwen2.5-coder:32b", "myo3", "some-model"]
)
def test_keys_do_not_match_inside_other_words(model: str) -> None:
    assert PriceTable().lookup(model) is None


def test_unlisted_models_anthropic_errs_high_openai_compatible_is_free() -> None:
    usage = Usage(input_tokens=MILLION)
    anthropic = AnthropicProvider(api_key="k")
    compatible = OpenAICompatibleProvider(model="m", base_url="http://127.0.0.1:9/v1")

    assert anthropic.cost_usd("claude-sonnet-9", usage) == PRICING["claude-sonnet"].input
    assert anthropic.cost_usd("haiku-finetune", usage) == PRICING["claude-haiku"].input
    assert anthropic.cost_usd("some-future-model", usage) == PRICING["claude-sonnet"].input
    assert compatible.cost_usd("some-future-model", usage) == 0.0
    # the shared table still prices a known model on any provider
    assert compatible.cost_usd("claude-sonnet-4-5", usage) == PRICING["claude-sonnet"].input


def test_overrides_replace_and_add_keys_and_the_same_matching_applies() -> None:
    table = PriceTable(
        {
            "GPT-4o": ModelPrice(9.0, 9.0, 9.0, 9.0),  # keys are case-insensitive
            "llama3.1": ModelPrice(0.1, 0.2, 0.1, 0.05),
            "claude-sonnet": ModelPrice(2.0, 10.0, 2.5, 0.2),
        }
    )

    assert table.lookup("gpt-4o-2024-08-06") == ModelPrice(9.0, 9.0, 9.0, 9.0)
    assert table.lookup("gpt-4o-mini") == PRICING["gpt-4o-mini"]  # longer built-in key
    assert table.lookup("llama3.1:70b") == ModelPrice(0.1, 0.2, 0.1, 0.05)
    assert table.lookup("llama3.10") is None
    # an overridden family also prices the unlisted members of that family
    assert table.claude_price("claude-sonnet-7") == ModelPrice(2.0, 10.0, 2.5, 0.2)
    assert table.claude_price("unknown") == ModelPrice(2.0, 10.0, 2.5, 0.2)
    assert PriceTable().lookup("gpt-4o") == PRICING["gpt-4o"]  # the built-in table is intact


def test_parse_overrides_defaults_cache_rates_to_the_input_rate() -> None:
    prices = parse_overrides(
        {
            "local": {"input": 0.5, "output": 1.5},
            "proxy": {"input": 1, "output": 2, "cache_write": 1.25, "cache_read": 0.1},
            "free": {"input": 0, "output": 0},
        }
    )

    assert prices == {
        "local": ModelPrice(0.5, 1.5, 0.5, 0.5),
        "proxy": ModelPrice(1.0, 2.0, 1.25, 0.1),
        "free": FREE,
    }


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ({"m": {"input": 1}}, r"MODEL_PRICING\['m'\]: output: Field required"),
        ({"m": {"input": -1, "output": 1}}, r"input: Input should be greater than or equal to 0"),
        ({"m": {"input": 1, "output": 1, "cached": 1}}, r"cached: Extra inputs are not permitted"),
        ({"m": 3}, r"MODEL_PRICING\['m'\]"),
        ({" ": {"input": 1, "output": 1}}, r"a model key is empty"),
    ],
)
def test_parse_overrides_names_what_is_wrong(raw: dict[str, object], problem: str) -> None:
    with pytest.raises(PricingError, match=problem):
        parse_overrides(raw)


def test_model_pricing_setting_reaches_every_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "MODEL_PRICING",
        '{"claude-sonnet-4-6": {"input": 1, "output": 2, "cache_write": 4, "cache_read": 8},'
        ' "llama3.1": {"input": 0.5, "output": 0.25}}',
    )
    monkeypatch.setenv("ANTHROPIC_API_KEY", "k")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.setenv("LLM_MODEL", "llama3.1:8b")
    monkeypatch.delenv("LLM_ROLE_MODELS", raising=False)
    monkeypatch.delenv("LLM_ROLE_MAX_TOKENS", raising=False)
    usage = Usage(
        input_tokens=MILLION,
        output_tokens=MILLION,
        cache_creation_input_tokens=MILLION,
        cache_read_input_tokens=MILLION,
    )

    monkeypatch.setenv("LLM_PROVIDER", "anthropic")
    anthropic = make_provider(Settings(_env_file=None).provider)
    monkeypatch.setenv("LLM_PROVIDER", "openai")
    compatible = make_provider(Settings(_env_file=None).provider)

    assert anthropic.cost_usd("claude-sonnet-4-6-20260101", usage) == 1 + 2 + 4 + 8
    assert anthropic.cost_usd("claude-sonnet-4-5", usage) == price_usd("claude-sonnet-4-5", usage)
    assert compatible.cost_usd("llama3.1:8b", usage) == 0.5 + 0.25 + 0.5 + 0.5
    assert compatible.cost_usd("claude-sonnet-4-6", usage) == 1 + 2 + 4 + 8


def test_anthropic_module_still_exports_the_table() -> None:
    assert anthropic_provider.PRICING is pricing.PRICING
    assert anthropic_provider.ModelPrice is pricing.ModelPrice
    assert anthropic_provider.price_usd is pricing.price_usd
