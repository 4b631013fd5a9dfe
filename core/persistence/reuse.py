"""Stored answers the platform reuses instead of paying twice: responses and summaries.

Both are per tenant. The response cache maps a request's fingerprint to the ledger row of
the call that answered it. An artifact summary is claimed before it is written, so two
agents needing the same summary at once share one summarizer run; a claim that stops
being renewed (its worker died) is taken over, and the summarizer's turns are keyed in the
ledger so the new owner reuses every part the old one finished.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from core.contracts import TurnKey
from core.persistence.db import ArtifactSummary, CachedResponse, Database, LedgerEntry, utcnow
from core.persistence.storage import insert_ignore

CLAIM_EXPIRES = timedelta(seconds=120)
"""A summary claim not renewed for this long belongs to a dead worker."""


async def cached_response(db: Database, tenant: str, fingerprint: str) -> LedgerEntry | None:
    """The ledger row that answered this exact request for this tenant before, if any."""
    async with db.session() as session:
        result = await session.execute(
            select(LedgerEntry)
            .join(CachedResponse, col(CachedResponse.ledger_id) == col(LedgerEntry.id))
            .where(CachedResponse.tenant == tenant, CachedResponse.fingerprint == fingerprint)
        )
        return result.scalars().first()


async def remember_response(db: Database, tenant: str, fingerprint: str, ledger_id: int) -> None:
    async with db.session() as session:
        await insert_ignore(
            session,
            CachedResponse,
            {
                "tenant": tenant,
                "fingerprint": fingerprint,
                "ledger_id": ledger_id,
                "created_at": utcnow(),
            },
        )
        await session.commit()


def new_claim() -> str:
    return uuid.uuid4().hex


async def claim_summary(
    db: Database, *, tenant: str, sha256: str, model: str, max_tokens: int, claim: str
) -> ArtifactSummary:
    """The summary's row: finished, claimed by `claim` (write it), or claimed by another.

    A stale claim is taken over here, so the caller owns the row whenever
    `row.summary is None and row.claim == claim`.
    """
    async with db.session() as session:
        await insert_ignore(
            session,
            ArtifactSummary,
            {
                "tenant": tenant,
                "sha256": sha256,
                "model": model,
                "max_tokens": max_tokens,
                "claim": claim,
                "claimed_at": utcnow(),
                "created_at": utcnow(),
            },
        )
        await session.commit()
        row = await _summary_row(session, tenant, sha256, model, max_tokens)
        if row.summary is None and row.claim != claim and _stale(row):
            # Conditional on the old claim: of several waiters, exactly one takes over.
            await session.execute(
                update(ArtifactSummary)
                .where(col(ArtifactSummary.id) == row.id, col(ArtifactSummary.claim) == row.claim)
                .values(claim=claim, claimed_at=utcnow())
            )
            await session.commit()
            session.expire_all()
            row = await _summary_row(session, tenant, sha256, model, max_tokens)
        return row


async def paid_summary_turn(db: Database, tenant: str, key: TurnKey) -> LedgerEntry | None:
    """A summarizer turn the tenant paid for already, whichever run's agent paid for it.

    The turn's `task_id` names the summary (its content and settings), so this finds the
    parts of a claim taken over from another run's dead worker, not only from this run's.
    """
    async with db.session() as session:
        result = await session.execute(
            select(LedgerEntry)
            .where(
                LedgerEntry.tenant == tenant,
                LedgerEntry.task_id == key.task_id,
                LedgerEntry.attempt == key.attempt,
                LedgerEntry.turn == key.turn,
            )
            .order_by(col(LedgerEntry.id))
            .limit(1)
        )
        return result.scalars().first()


async def renew_claim(db: Database, row_id: int, claim: str) -> None:
    """Tell waiters the owner is alive (once per summarizer turn)."""
    async with db.session() as session:
        await session.execute(
            update(ArtifactSummary)
            .where(col(ArtifactSummary.id) == row_id, col(ArtifactSummary.claim) == claim)
            .values(claimed_at=utcnow())
        )
        await session.commit()


async def finish_summary(db: Database, row_id: int, summary: str) -> None:
    async with db.session() as session:
        await session.execute(
            update(ArtifactSummary)
            .where(col(ArtifactSummary.id) == row_id, col(ArtifactSummary.summary).is_(None))
            .values(summary=summary)
        )
        await session.commit()


def _stale(row: ArtifactSummary) -> bool:
    claimed_at = row.claimed_at
    if claimed_at.tzinfo is None:  # SQLite hands back naive UTC datetimes
        claimed_at = claimed_at.replace(tzinfo=utcnow().tzinfo)
    return utcnow() - claimed_at > CLAIM_EXPIRES


async def _summary_row(
    session: AsyncSession, tenant: str, sha256: str, model: str, max_tokens: int
) -> ArtifactSummary:
    result = await session.execute(
        select(ArtifactSummary).where(
            ArtifactSummary.tenant == tenant,
            ArtifactSummary.sha256 == sha256,
            ArtifactSummary.model == model,
            ArtifactSummary.max_tokens == max_tokens,
        )
    )
    return result.scalars().one()
