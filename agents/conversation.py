"""Rebuild an agent's conversation from what storage holds, turn by turn."""

from __future__ import annotations

import json

from pydantic import TypeAdapter

from agents.protocol import ContentBlock, Message, ModelResponse, TextBlock, ToolResultBlock

_BLOCKS = TypeAdapter(list[ContentBlock])


def response_json(response: ModelResponse) -> str:
    return response.model_dump_json()


def response_from_json(text: str) -> ModelResponse:
    return ModelResponse.model_validate_json(text)


def tool_results_json(blocks: list[ToolResultBlock]) -> str:
    return json.dumps([b.model_dump() for b in blocks])


def tool_results_from_json(text: str) -> list[ContentBlock]:
    return _BLOCKS.validate_json(text)


def build_messages(
    first_message: str, responses: list[ModelResponse], tool_results: list[list[ContentBlock]]
) -> list[Message]:
    """The task message, then for each earlier turn the model's answer and its tool results."""
    messages = [Message(role="user", content=[TextBlock(text=first_message)])]
    for turn, response in enumerate(responses):
        messages.append(Message(role="assistant", content=list(response.content)))
        if turn < len(tool_results) and tool_results[turn]:
            messages.append(Message(role="user", content=tool_results[turn]))
    return messages
