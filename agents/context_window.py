"""Keep each request inside its role's context budget.

Three decisions, all plain functions of sizes so they are the same on every turn and
every retry:

- how many tokens a request holds (`TokenEstimator`: characters over a chars-per-token
  ratio that each provider answer calibrates; exact counts come from the provider when it
  offers them, see `agents.request`);
- which upstream artifacts go in whole and which as their summary (`choose_summaries`):
  the largest go first, until the rest fits the upstream share of the budget;
- which oversized arguments of the agent's earlier tool calls to elide (`elide_large_inputs`:
  a whole file passed to write_file is in the workspace, not needed in the conversation);
- which of the agent's own earlier turns to drop (`trim_history`): whole turns only (the
  model's answer with the tool results that answer it), oldest first, in steps, so the
  conversation's prefix stays the same for several turns and keeps hitting the cache.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from agents.protocol import CacheControl, Message, TextBlock, ToolUseBlock
from core.contracts import Usage

DEFAULT_CHARS_PER_TOKEN = 3.0
"""Conservative for code and JSON (English prose runs near 4); errs towards summarizing."""

UPSTREAM_SHARE = 0.6
"""Of the budget left after the fixed parts, what upstream artifacts may fill; the rest is
room for the agent's own turns."""

TRIM_STEP = 4
"""Turns dropped at a time: the trimmed prefix then holds for several turns."""

ELIDE_SHARE = 8
"""A tool argument longer than 1/ELIDE_SHARE of the budget is elided from history."""


class TokenEstimator:
    """Tokens from characters, with the ratio learnt per model from reported usage."""

    def __init__(self, chars_per_token: float = DEFAULT_CHARS_PER_TOKEN) -> None:
        self.default = chars_per_token
        self._ratios: dict[str, float] = {}

    def ratio(self, model: str) -> float:
        return self._ratios.get(model, self.default)

    def tokens(self, chars: int, model: str) -> int:
        return math.ceil(chars / self.ratio(model))

    def observe(self, model: str, chars: int, usage: Usage) -> None:
        """Move the model's ratio towards what one answered request measured."""
        sent = (
            usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
        )
        if chars <= 0 or sent <= 0:
            return
        measured = min(max(chars / sent, 1.0), 8.0)
        # Estimates err high on purpose: take the lower of old and new ratios at once, and
        # move up slowly.
        old = self.ratio(model)
        self._ratios[model] = measured if measured < old else old + 0.2 * (measured - old)


def upstream_allowance(budget: int, fixed: int) -> int:
    """Tokens the upstream artifacts may fill, given the fixed parts of the request."""
    return max(0, int((budget - fixed) * UPSTREAM_SHARE))


def choose_summaries(sizes: Sequence[int], allowance: int, summary_tokens: int) -> set[int]:
    """Indices of the artifacts to send as summaries, so the rest fits `allowance`.

    Largest first; an artifact no larger than a summary stays whole (summarizing it saves
    nothing). When everything is summarized and it still does not fit, the request goes
    out anyway and history trimming or the provider's own limit has the last word.
    """
    total = sum(sizes)
    chosen: set[int] = set()
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        if total <= allowance or sizes[index] <= summary_tokens:
            break
        chosen.add(index)
        total += summary_tokens - sizes[index]
    return chosen


def trim_history(
    messages: list[Message], budget: int, count: Callable[[list[Message]], int]
) -> tuple[list[Message], int]:
    """Drop the oldest whole turns until `count(messages)` fits `budget`.

    `messages` is the task message followed by turns: the model's answer, then the user
    message with that answer's tool results. A turn goes as a pair, so no tool_use is left
    without its tool_result; the task message and the latest turn always stay. Returns the
    messages and how many turns were dropped (a note in the task message says so).
    """
    if count(messages) <= budget:
        return messages, 0
    first, rest = messages[0], messages[1:]
    turns = len(rest) // 2
    dropped = 0
    while dropped < turns - 1:
        dropped = min(dropped + TRIM_STEP, turns - 1)
        kept = [_with_trim_note(first, dropped), *rest[2 * dropped :]]
        if count(kept) <= budget:
            return kept, dropped
    return [_with_trim_note(first, dropped), *rest[2 * dropped :]], dropped


def elide_large_inputs(messages: list[Message], max_chars: int) -> list[Message]:
    """Earlier tool calls with a string argument over `max_chars` (e.g. a whole file given
    to write_file), with that argument replaced by a note: the file is in the workspace.

    The same calls are elided on every turn, so the conversation's prefix never changes.
    """
    out = []
    for message in messages:
        if message.role == "assistant" and any(
            isinstance(b, ToolUseBlock) and _large(b, max_chars) for b in message.content
        ):
            blocks = [
                b.model_copy(update={"input": _elided(b.input, max_chars)})
                if isinstance(b, ToolUseBlock) and _large(b, max_chars)
                else b
                for b in message.content
            ]
            message = message.model_copy(update={"content": blocks})
        out.append(message)
    return out


def _large(block: ToolUseBlock, max_chars: int) -> bool:
    return any(isinstance(v, str) and len(v) > max_chars for v in block.input.values())


def _elided(arguments: dict[str, Any], max_chars: int) -> dict[str, Any]:
    return {
        name: f"[{len(value)} characters, elided from the conversation to fit the context "
        "budget; the workspace has them]"
        if isinstance(value, str) and len(value) > max_chars
        else value
        for name, value in arguments.items()
    }


def _with_trim_note(first: Message, dropped: int) -> Message:
    if not dropped:
        return first
    note = TextBlock(
        text=f"[Your first {dropped} turns on this task were dropped to fit the context "
        "budget. Everything you wrote is in the workspace: use list_files and read_file.]"
    )
    return first.model_copy(update={"content": [*first.content, note]})


def mark_last_message(messages: list[Message]) -> list[Message]:
    """A cache breakpoint on the newest block, so the next turn reads this turn's prefix."""
    if not messages or not messages[-1].content:
        return messages
    last = messages[-1]
    block = last.content[-1].model_copy(update={"cache_control": CacheControl()})
    return [*messages[:-1], last.model_copy(update={"content": [*last.content[:-1], block]})]
