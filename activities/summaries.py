"""Summaries of upstream artifacts too large for an agent's context budget.

A summary is written once per tenant, content and summarizer settings, and reused by
every later agent (`core.persistence.reuse`). A file larger than the summarizer's own window is
summarized in parts, then the parts are merged; each part is a ledger turn of its own, so
a retried or taken-over summary pays only for the parts not yet done.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from temporalio import activity

from agents.context_window import TokenEstimator
from agents.conversation import response_from_json
from agents.protocol import Message, ModelRequest, TextBlock
from agents.roles import load_prompt
from core.contracts import TurnKey, Usage
from core.persistence import reuse, storage
from core.persistence.db import Artifact, Database, LedgerEntry

SUMMARIZER_ROLE = "summarizer"
CHUNK_TOKENS = 100_000
"""Most of one summarizer request: a part of a file larger than this is summarized alone."""
WAIT_SECONDS = 0.5

PaidCall = Callable[[ModelRequest, TurnKey, str], Awaitable[LedgerEntry]]
"""Makes one provider call and records it in the ledger under the key (for a tenant)."""


@dataclass
class Spent:
    """What preparing one request cost: summarizer turns paid for now (not reused ones)."""

    usage: Usage = field(default_factory=Usage)
    cost_usd: float = 0.0
    calls: int = 0

    def add(self, entry: LedgerEntry) -> None:
        self.usage = self.usage + storage.entry_usage(entry)
        self.cost_usd += entry.cost_usd
        self.calls += 1


class Summarizer:
    def __init__(
        self,
        db: Database,
        paid_call: PaidCall,
        *,
        model: str,
        max_tokens: int,
        estimator: TokenEstimator,
        chunk_tokens: int = CHUNK_TOKENS,
    ) -> None:
        self.db = db
        self.paid_call = paid_call
        self.model = model
        self.max_tokens = max_tokens
        self.estimator = estimator
        self.chunk_tokens = chunk_tokens

    async def summary(self, artifact: Artifact, *, key: TurnKey, tenant: str, spent: Spent) -> str:
        """The stored summary of `artifact`'s content; written now if nobody has yet."""
        claim = reuse.new_claim()
        while True:
            row = await reuse.claim_summary(
                self.db,
                tenant=tenant,
                sha256=artifact.sha256,
                model=self.model,
                max_tokens=self.max_tokens,
                claim=claim,
            )
            if row.summary is not None:
                return row.summary
            if row.claim == claim:
                break
            # Another agent is writing it: wait rather than pay for it twice.
            activity.heartbeat()
            await asyncio.sleep(WAIT_SECONDS)
        assert row.id is not None
        job = _Job(row_id=row.id, claim=claim, tenant=tenant, spent=spent)
        text = await self._write(artifact, key, job)
        await reuse.finish_summary(self.db, row.id, text)
        return text

    async def _write(self, artifact: Artifact, key: TurnKey, job: _Job) -> str:
        parts = split_text(
            artifact.content, int(self.chunk_tokens * self.estimator.ratio(self.model))
        )
        # Named by content and settings, not by the agent that asked: whoever takes over a
        # claim, from any run of the tenant, finds the parts already paid for. The rows stay
        # under the run whose agent paid, so its spending and budget count them.
        identity = hashlib.sha256(
            f"{artifact.sha256}:{self.model}:{self.max_tokens}".encode()
        ).hexdigest()[:16]
        turn_key = key.model_copy(update={"task_id": f"summary-{identity}", "attempt": 0})
        partials = []
        for number, part in enumerate(parts):
            label = f' part="{number + 1} of {len(parts)}"' if len(parts) > 1 else ""
            prompt = (
                f'<artifact path="{artifact.path}"{label}>\n{part}\n</artifact>\n\n'
                f"Summarize this {'part of the ' if label else ''}file in at most "
                f"{self.max_tokens} tokens."
            )
            partials.append(
                await self._turn(prompt, turn_key.model_copy(update={"turn": number}), job)
            )
        if len(partials) == 1:
            return partials[0]
        joined = "\n\n".join(
            f'<part-summary number="{n}">\n{text}\n</part-summary>'
            for n, text in enumerate(partials, start=1)
        )
        prompt = (
            f"These are summaries of the {len(partials)} consecutive parts of the file "
            f"{artifact.path}. Merge them into one summary of the whole file in at most "
            f"{self.max_tokens} tokens.\n\n{joined}"
        )
        return await self._turn(prompt, turn_key.model_copy(update={"turn": len(parts)}), job)

    async def _turn(self, prompt: str, turn_key: TurnKey, job: _Job) -> str:
        entry = await reuse.paid_summary_turn(self.db, job.tenant, turn_key)
        if entry is None:
            request = ModelRequest(
                model=self.model,
                system=load_prompt(SUMMARIZER_ROLE),
                messages=[Message(role="user", content=[TextBlock(text=prompt)])],
                max_tokens=self.max_tokens,
                role=SUMMARIZER_ROLE,
            )
            entry = await self.paid_call(request, turn_key, job.tenant)
            job.spent.add(entry)
        await reuse.renew_claim(self.db, job.row_id, job.claim)
        return response_from_json(entry.response).text.strip()


@dataclass
class _Job:
    """One summary being written: its claimed row, and where its costs are added up."""

    row_id: int
    claim: str
    tenant: str
    spent: Spent


def split_text(text: str, max_chars: int) -> list[str]:
    """`text` in consecutive parts of at most `max_chars`, cut at line ends where possible."""
    if len(text) <= max_chars:
        return [text]
    parts = []
    start = 0
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            newline = text.rfind("\n", start + max_chars // 2, end)
            if newline != -1:
                end = newline + 1
        parts.append(text[start:end])
        start = end
    return parts
