"""Responders that script a fault into an otherwise default conversation, on either wire.

A fake's ``responder`` answers every request its script does not; these wrap the fake's
``default_responder`` and change only the requests they are about.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

from tests.fakes.loopback import (
    ErrorReply,
    LoopbackAPI,
    Reply,
    ReplyLike,
    role_of,
    task_of,
    turn_of,
)

__all__ = ["FaultsByTurn", "FaultyDesigner"]


class FaultyDesigner:
    """Answers every role normally, except the UX engineer while the fault is on."""

    def __init__(self, api: LoopbackAPI) -> None:
        self.api = api
        self.fault = True
        self.calls: Counter[str] = Counter()
        self.task_calls: Counter[str] = Counter()

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        role = role_of(request)
        self.calls[role] += 1
        self.task_calls[task_of(request)] += 1
        if role == "ux_engineer" and self.fault:
            return ErrorReply(400, "prompt is too long: 250000 tokens > 200000 maximum")
        return self.api.default_responder(request)


class FaultsByTurn:
    """The first request of each faulty (role, turn) gets its fault; every other request
    the default answer, with ``usage(request)`` on top of the usage the fake would report
    (cached prompts, as a long agent conversation has: every counter is exercised)."""

    def __init__(
        self,
        api: LoopbackAPI,
        faults: Mapping[tuple[str, int], Reply],
        usage: Callable[[Mapping[str, Any]], Mapping[str, Any]],
    ) -> None:
        self.api = api
        self.faults = dict(faults)
        self.usage = usage
        self.injected: list[tuple[str, int]] = []
        self._lock = threading.Lock()

    def __call__(self, request: dict[str, Any]) -> ReplyLike:
        key = (role_of(request), turn_of(request))
        with self._lock:
            fault = self.faults.pop(key, None)
            if fault is not None:
                self.injected.append(key)
        if fault is not None:
            return fault
        reply = self.api.default_responder(request)
        assert isinstance(reply, Mapping), "the default answer is a success body"
        return {**reply, "usage": self.usage(request)}
