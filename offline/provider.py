"""`OfflineProvider`: the offline model behind the `LLMProvider` protocol.

Same request, same answer: ids, texts and usage are all derived from the request. Each call
is answered by the first play (see `offline.turn`) that takes it.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from pathlib import Path

from agents.protocol import ModelRequest, ModelResponse
from core.contracts import Usage
from offline.change import change_the_repository
from offline.contract import wait_for_contract
from offline.delivery import deliver
from offline.report import report
from offline.run_and_fix import run_tests_and_fix
from offline.summarizer import summarize
from offline.turn import Conversation, Play, Turn, digest

OFFLINE_MODEL = "offline-sim-1"

PLAYS: tuple[Play, ...] = (
    summarize,
    wait_for_contract,
    change_the_repository,
    run_tests_and_fix,
    deliver,
)
"""Tried in order; a call none of them takes gets the closing `report`."""


def next_turn(conversation: Conversation) -> Turn:
    for play in PLAYS:
        turn = play(conversation)
        if turn is not None:
            return turn
    return report(conversation)


def _tokens(chars: int) -> int:
    return math.ceil(chars / 4)


class OfflineProvider:
    """Deterministic, network-free `LLMProvider` that plays every role from templates."""

    name = "offline"
    default_model = OFFLINE_MODEL

    def __init__(
        self,
        latency_seconds: float = 0.0,
        call_log: Path | None = None,
        command_pause_seconds: float = 0.0,
    ) -> None:
        # Simulated model latency, to exercise timeouts, heartbeats and crash recovery.
        self.latency_seconds = latency_seconds
        # One JSON line per call is appended here, so tests can count calls across processes.
        self.call_log = Path(call_log) if call_log is not None else None
        # Latency is in the model call; this sleep is in the sandbox, on the checks worker.
        self.command_pause_seconds = command_pause_seconds

    async def complete(self, request: ModelRequest) -> ModelResponse:
        started = time.monotonic()
        conversation = Conversation.of(
            request, self.default_model, command_pause_seconds=self.command_pause_seconds
        )
        response_id = (
            "msg_offline_" + digest(request.role, conversation.turn, conversation.task_message)[:24]
        )
        self._log_call(request, conversation.turn, response_id)
        turn = next_turn(conversation)
        output_chars = len(json.dumps([block.model_dump() for block in turn.content]))
        input_chars = len(request.system) + sum(
            len(message.model_dump_json()) for message in request.messages
        )
        # The latency is the whole call's, as a model's includes writing its answer.
        if self.latency_seconds > 0:
            await asyncio.sleep(max(0.0, started + self.latency_seconds - time.monotonic()))
        return ModelResponse(
            id=response_id,
            model=conversation.model,
            content=turn.content,
            stop_reason=turn.stop_reason,
            usage=Usage(input_tokens=_tokens(input_chars), output_tokens=_tokens(output_chars)),
        )

    def cost_usd(self, model: str, usage: Usage) -> float:
        return 0.0

    def _log_call(self, request: ModelRequest, turn: int, response_id: str) -> None:
        if self.call_log is None:
            return
        self.call_log.parent.mkdir(parents=True, exist_ok=True)
        # `id` is the response id the ledger stores, so a logged call maps to its ledger row.
        line = json.dumps(
            {
                "role": request.role,
                "turn": turn,
                "pid": os.getpid(),
                "id": response_id,
                "at": round(time.time(), 3),
            }
        )
        # One write of one short line in append mode: concurrent workers do not interleave.
        with self.call_log.open("a", encoding="utf-8") as log:
            log.write(line + "\n")
            log.flush()
