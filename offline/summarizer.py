"""The summarizer: context budgeting asks for summaries of long upstream files, and the
offline model answers with the text's outline (headings, definitions) within the limit."""

from __future__ import annotations

import re

from agents.protocol import TextBlock
from offline.turn import Conversation, Turn

SUMMARIZER_ROLE = "summarizer"
_OUTLINE_LINE = re.compile(r"^\s*(#|def |class |async def |CREATE |[-*] |\w+:|@)")


def outline(prompt: str, max_tokens: int) -> str:
    body = re.sub(r"</?(artifact|part-summary)[^>]*>", "", prompt)
    lines = [line for line in body.splitlines() if _OUTLINE_LINE.match(line)] or body.splitlines()
    summary, size, limit = [], 0, max_tokens * 4
    for line in dict.fromkeys(lines):  # repeated lines once, in order
        if size + len(line) + 1 > limit:
            break
        summary.append(line)
        size += len(line) + 1
    return "Offline summary (deterministic outline, no LLM):\n" + "\n".join(summary)


def summarize(conversation: Conversation) -> Turn | None:
    if conversation.role != SUMMARIZER_ROLE:
        return None
    text = outline(conversation.task_message, conversation.request.max_tokens)
    return Turn([TextBlock(text=text)], "end_turn")
