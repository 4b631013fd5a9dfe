"""The one protocol every LLM provider speaks.

Shaped after the Anthropic Messages API (content blocks, tool use, stop reason,
usage with cache tokens) because it is the richest of the wire formats we speak;
other providers translate to and from it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field

from core.contracts import Usage


class CacheControl(BaseModel):
    """A prompt-cache breakpoint: the request up to and including this block is cacheable.

    Named and shaped as on the Anthropic wire; providers without prompt caching ignore it.
    """

    type: Literal["ephemeral"] = "ephemeral"


class TextBlock(BaseModel):
    type: Literal["text"] = "text"
    text: str
    cache_control: CacheControl | None = None


class ToolUseBlock(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


class ToolResultBlock(BaseModel):
    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool = False
    cache_control: CacheControl | None = None


ContentBlock = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


class Message(BaseModel):
    role: Literal["user", "assistant"]
    content: list[ContentBlock]


class ToolDefinition(BaseModel):
    name: str
    description: str
    input_schema: dict[str, Any]
    native_type: str | None = None
    """A tool type the provider defines itself (Anthropic's `text_editor_20250728`,
    `bash_20250124`): a provider that knows it sends the type and name instead of the schema."""
    native_options: dict[str, Any] = Field(default_factory=dict)
    """Options of the native tool, e.g. the text editor's `max_characters`."""


StopReason = Literal["end_turn", "tool_use", "max_tokens", "stop_sequence", "pause_turn", "refusal"]


class ModelRequest(BaseModel):
    model: str
    system: str
    messages: list[Message]
    tools: list[ToolDefinition] = Field(default_factory=list)
    max_tokens: int = 8192
    role: str = ""
    """Which agent asks; providers may use it (the offline model does), none sends it."""
    cache_prefix: bool = False
    """Mark the tool definitions and the system prompt as a cached prefix (where supported)."""

    def wire_chars(self) -> int:
        """Characters of what is sent: the basis of token estimates."""
        return (
            len(self.system)
            + sum(len(m.model_dump_json(exclude_none=True)) for m in self.messages)
            + sum(len(t.model_dump_json()) for t in self.tools)
        )

    def fingerprint(self, provider: str) -> str:
        """Identifies the request for the response cache: same provider, model, prompt, tools."""
        body = self.model_dump(mode="json", exclude_none=True)
        canonical = json.dumps([provider, body], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


class ModelResponse(BaseModel):
    id: str
    model: str
    content: list[ContentBlock]
    stop_reason: StopReason
    usage: Usage

    @property
    def tool_uses(self) -> list[ToolUseBlock]:
        return [block for block in self.content if isinstance(block, ToolUseBlock)]

    @property
    def text(self) -> str:
        return "\n".join(block.text for block in self.content if isinstance(block, TextBlock))


class ProviderError(Exception):
    """A provider failure, already classified for the retry policy."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after = retry_after


@runtime_checkable
class LLMProvider(Protocol):
    name: str
    default_model: str

    async def complete(self, request: ModelRequest) -> ModelResponse: ...

    def cost_usd(self, model: str, usage: Usage) -> float: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that can count a request's input tokens exactly (Anthropic's count_tokens)."""

    async def count_tokens(self, request: ModelRequest) -> int | None:
        """The exact count, or None when this provider (or the one it wraps) cannot tell."""
        ...
