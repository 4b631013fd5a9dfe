"""What a model call costs: one price table for every provider, overridable by settings.

Prices are list prices in USD per million tokens. Our ``Usage`` counts four kinds of
tokens without overlap (input, output, cache writes, cache reads), and each is charged at
its own rate, so a cache read is never billed as fresh input nor a cache write as a read.

A key matches a model id that contains it as a whole word (``gpt-4o`` matches
``gpt-4o-2024-08-06`` and ``openai/gpt-4o``, not ``gpt-4o3``), case-insensitively; the
longest matching key wins, so a generation can override its family, and cloud-vendor ids
(``us.anthropic.claude-3-5-haiku-20241022-v1:0``) price like the originals. ``MODEL_PRICING``
entries replace the built-in entry of the same key or add new keys; the same matching
applies to all of them.

A model no key matches is priced by the provider's rule for unknown models: the Anthropic
API only serves paid Claude models, so an unlisted one falls to its family's price (the
newest or highest known; for budget caps, erring high is the safe side); an
OpenAI-compatible endpoint is as often a free local server (Ollama, vLLM, llama.cpp), so an
unlisted model there costs 0 unless ``MODEL_PRICING`` names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.contracts import Usage

__all__ = [
    "FREE",
    "PRICING",
    "ModelPrice",
    "PriceTable",
    "PricingError",
    "cost_usd",
    "price_usd",
]


class ModelPrice(NamedTuple):
    """USD per million tokens."""

    input: float
    output: float
    cache_write: float
    cache_read: float


FREE = ModelPrice(0.0, 0.0, 0.0, 0.0)

# Anthropic: 5-minute cache writes. OpenAI charges nothing extra to write its prompt cache,
# so its cache-write rate is the input rate (its API reports no cache writes anyway).
PRICING: dict[str, ModelPrice] = {
    # Anthropic
    "claude-opus-4-5": ModelPrice(5.00, 25.00, 6.25, 0.50),
    "claude-opus": ModelPrice(15.00, 75.00, 18.75, 1.50),
    "claude-3-opus": ModelPrice(15.00, 75.00, 18.75, 1.50),
    "claude-sonnet": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-3-7-sonnet": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-3-5-sonnet": ModelPrice(3.00, 15.00, 3.75, 0.30),
    "claude-haiku": ModelPrice(1.00, 5.00, 1.25, 0.10),
    "claude-3-5-haiku": ModelPrice(0.80, 4.00, 1.00, 0.08),
    "claude-3-haiku": ModelPrice(0.25, 1.25, 0.30, 0.03),
    # OpenAI
    "gpt-5": ModelPrice(1.25, 10.00, 1.25, 0.125),
    "gpt-5-mini": ModelPrice(0.25, 2.00, 0.25, 0.025),
    "gpt-5-nano": ModelPrice(0.05, 0.40, 0.05, 0.005),
    "gpt-4.1": ModelPrice(2.00, 8.00, 2.00, 0.50),
    "gpt-4.1-mini": ModelPrice(0.40, 1.60, 0.40, 0.10),
    "gpt-4.1-nano": ModelPrice(0.10, 0.40, 0.10, 0.025),
    "gpt-4o": ModelPrice(2.50, 10.00, 2.50, 1.25),
    "gpt-4o-mini": ModelPrice(0.15, 0.60, 0.15, 0.075),
    "o3": ModelPrice(2.00, 8.00, 2.00, 0.50),
    "o3-mini": ModelPrice(1.10, 4.40, 1.10, 0.55),
    "o4-mini": ModelPrice(1.10, 4.40, 1.10, 0.275),
}

# Unlisted Claude models: the family named in the id, else the default family.
_CLAUDE_FAMILIES = {"opus": "claude-opus", "haiku": "claude-haiku", "sonnet": "claude-sonnet"}
_DEFAULT_CLAUDE_KEY = "claude-sonnet"


class PricingError(ValueError):
    """``MODEL_PRICING`` is not a valid price table."""


class _PriceSetting(BaseModel):
    """One model's entry in ``MODEL_PRICING``; cache rates default to the input rate."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cache_write: float | None = Field(default=None, ge=0)
    cache_read: float | None = Field(default=None, ge=0)

    def price(self) -> ModelPrice:
        return ModelPrice(
            input=self.input,
            output=self.output,
            cache_write=self.input if self.cache_write is None else self.cache_write,
            cache_read=self.input if self.cache_read is None else self.cache_read,
        )


def parse_overrides(raw: Mapping[str, Any]) -> dict[str, ModelPrice]:
    """``MODEL_PRICING`` (model key -> {input, output, cache_write?, cache_read?}) as prices."""
    prices: dict[str, ModelPrice] = {}
    for key, value in raw.items():
        if not key.strip():
            raise PricingError("MODEL_PRICING: a model key is empty")
        try:
            prices[key] = _PriceSetting.model_validate(value).price()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in error['loc']) or 'value'}: {error['msg']}"
                for error in exc.errors()
            )
            raise PricingError(f"MODEL_PRICING[{key!r}]: {problems}") from None
    return prices


def cost_usd(price: ModelPrice, usage: Usage) -> float:
    """What ``usage`` costs at ``price``: each kind of token at its own rate."""
    return (
        usage.input_tokens * price.input
        + usage.output_tokens * price.output
        + usage.cache_creation_input_tokens * price.cache_write
        + usage.cache_read_input_tokens * price.cache_read
    ) / 1_000_000


@lru_cache(maxsize=1024)
def _key_pattern(key: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![a-z0-9]){re.escape(key)}(?![a-z0-9])")


def _longest_match(table: Mapping[str, ModelPrice], model: str) -> ModelPrice | None:
    name = model.lower()
    matches = [key for key in table if _key_pattern(key).search(name)]
    return table[max(matches, key=len)] if matches else None


class PriceTable:
    """The built-in ``PRICING`` with ``MODEL_PRICING`` merged in."""

    def __init__(self, overrides: Mapping[str, ModelPrice] | None = None) -> None:
        self.overrides = {key.strip().lower(): price for key, price in (overrides or {}).items()}
        self.prices: dict[str, ModelPrice] = {**PRICING, **self.overrides}

    @classmethod
    def from_settings(cls, raw: Mapping[str, Any]) -> PriceTable:
        return cls(parse_overrides(raw))

    def lookup(self, model: str) -> ModelPrice | None:
        """The price of the longest key ``model`` contains; None if no key matches."""
        return _longest_match(self.prices, model)

    def claude_price(self, model: str) -> ModelPrice:
        """``lookup``, else the Claude family named in the id, else the default family."""
        price = self.lookup(model)
        if price is not None:
            return price
        name = model.lower()
        for family, key in _CLAUDE_FAMILIES.items():
            if family in name:
                return self.prices[key]
        return self.prices[_DEFAULT_CLAUDE_KEY]


_BUILT_IN = PriceTable()


def price_usd(model: str, usage: Usage, table: PriceTable | None = None) -> float:
    """What ``usage`` costs on ``model`` by the Anthropic rule for unlisted models."""
    return cost_usd((table or _BUILT_IN).claude_price(model), usage)
