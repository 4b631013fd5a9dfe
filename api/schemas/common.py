"""Bodies several resources share."""

from __future__ import annotations

from pydantic import BaseModel


class Accepted(BaseModel):
    """A request the run's workflow was sent; it acts on it asynchronously."""

    run_id: str
    detail: str
