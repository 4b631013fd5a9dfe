"""What an estimate says: figures (mean and p90) per role and in total."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

from pydantic import BaseModel, Field

from core.contracts import Usage

Pricing = Callable[[str, Usage], float]
"""USD for `usage` on a model: the provider's `cost_usd`."""


class Figure(BaseModel):
    mean: float
    p90: float

    def __add__(self, other: Figure) -> Figure:
        return Figure(mean=self.mean + other.mean, p90=self.p90 + other.p90)

    def rounded(self, digits: int) -> Figure:
        return Figure(mean=round(self.mean, digits), p90=round(self.p90, digits))


ZERO = Figure(mean=0.0, p90=0.0)

Basis = Literal["history", "defaults", "never_ran"]


class RoleEstimate(BaseModel):
    role: str
    tasks: int = Field(
        description="Units of the plan this role plays (tasks and reviews); 0 for a role the "
        "plan does not name that earlier runs spent tokens on (estimated per run)."
    )
    basis: Basis = Field(
        description="`history`: earlier runs; `defaults`: no history for this role; "
        "`never_ran`: its only tasks are conditional and ran in none of the earlier runs "
        "(mean 0, p90 as if they ran)."
    )
    samples: int = Field(description="Earlier task executions of this role that were read.")
    models: list[str] = Field(description="Models those executions ran on.")
    tokens: Figure = Field(description="Input + output tokens for all of this role's units.")
    cost_usd: Figure


class Estimate(BaseModel):
    template: str
    model: str = Field(description="The run's model (tasks may override it).")
    basis: Basis
    runs_seen: int = Field(description="Completed runs of this template the history covers.")
    note: str | None = None
    roles: list[RoleEstimate]
    tokens: Figure
    cost_usd: Figure


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def figure(values: Sequence[float]) -> Figure:
    return Figure(mean=sum(values) / len(values), p90=percentile(values, 90))
