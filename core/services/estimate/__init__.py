"""What a run will probably cost, before it starts: from the tenant's history, else defaults.

A *sample* is what one task of one earlier run spent: the sum over its model calls (every
attempt and turn) of input + output tokens and of cost, read from the ledger joined with
the runs of that tenant and template. A plan is a list of *units*: each task, plus one per
reviewer of a task's `review_by` (a supervision pass is its own agent run, with its own
task id `<task>.review-<role>` in the ledger).

A unit is predicted from samples, by their mean and 90th percentile:

- the samples of the same task id and role, if the history has any; else those of its
  role in any task (a task new to the template, a task added to a run);
- of those, the ones recorded on the unit's own model if there are any: a template run on
  two models is estimated per model;
- a task with a `when` condition counts what it spent in each earlier run, 0 where its
  condition was false, so its mean is the expected cost. If it never ran, its mean is 0
  (basis `never_ran`) and its p90 is what it would cost if it did run.

Roles the plan does not name but earlier runs of the template spent tokens on (e.g.
`validator` calls after each task) are estimated per run: their total in each earlier run,
0 where they spent nothing. The validator is left out for a plan with `validate_tasks` off.

Roles without samples (a template never run) use `DEFAULT_TASK_USAGE`, priced for the
unit's model, with the 90th percentile at `DEFAULT_P90_FACTOR` times the mean.

Totals add the units up. The total's p90 is the sum of the units' p90s: an upper bound
(it assumes a bad run is bad everywhere), which is the safe side for a budget check.

Costs: a sample recorded on the unit's own model keeps its ledger cost; a sample from
another model is repriced for the unit's model from its tokens, so switching models
changes the cost estimate and not the token estimate.

After a run, `predicted_vs_actual` puts the estimate the run would have got when it
started (history of the runs completed before it was created) next to what the ledger
says it spent, per role: nothing is stored at start for it.
"""

from core.services.estimate.comparison import (
    PredictedVsActual,
    RoleComparison,
    plan_of_run,
    predicted_vs_actual,
)
from core.services.estimate.figures import (
    Basis,
    Estimate,
    Figure,
    Pricing,
    RoleEstimate,
    percentile,
)
from core.services.estimate.history_cache import HistoryCache
from core.services.estimate.ledger import HISTORY_RUNS, TaskSample, task_history
from core.services.estimate.prediction import (
    DEFAULT_P90_FACTOR,
    DEFAULT_TASK_USAGE,
    estimate_plan,
    estimate_run,
)
from core.services.runs import RunNotRecorded

__all__ = [
    "DEFAULT_P90_FACTOR",
    "DEFAULT_TASK_USAGE",
    "HISTORY_RUNS",
    "Basis",
    "Estimate",
    "Figure",
    "HistoryCache",
    "PredictedVsActual",
    "Pricing",
    "RoleComparison",
    "RoleEstimate",
    "RunNotRecorded",
    "TaskSample",
    "estimate_plan",
    "estimate_run",
    "percentile",
    "plan_of_run",
    "predicted_vs_actual",
    "task_history",
]
