"""How cost estimates look in a terminal: before a run, and predicted vs actual after it."""

from __future__ import annotations

from rich.table import Table

from core.services.estimate import Estimate, PredictedVsActual


def _tokens(value: float) -> str:
    return f"{value:,.0f}"


def _usd(value: float) -> str:
    return f"${value:.4f}"


def estimate_table(estimate: Estimate) -> Table:
    table = Table(title=f"Estimate · {estimate.template} · {estimate.model}")
    for column in (
        "role",
        "units",
        "basis",
        "samples",
        "tokens mean",
        "tokens p90",
        "cost mean",
        "cost p90",
    ):
        table.add_column(column, justify="left" if column in ("role", "basis") else "right")
    for role in estimate.roles:
        table.add_row(
            role.role,
            str(role.tasks) if role.tasks else "per run",
            role.basis,
            str(role.samples),
            _tokens(role.tokens.mean),
            _tokens(role.tokens.p90),
            _usd(role.cost_usd.mean),
            _usd(role.cost_usd.p90),
        )
    table.add_section()
    table.add_row(
        "total",
        str(sum(r.tasks for r in estimate.roles)),
        estimate.basis,
        str(sum(r.samples for r in estimate.roles)),
        _tokens(estimate.tokens.mean),
        _tokens(estimate.tokens.p90),
        _usd(estimate.cost_usd.mean),
        _usd(estimate.cost_usd.p90),
    )
    return table


def based_on(estimate: Estimate) -> str:
    if estimate.runs_seen == 0:
        return f"Based on no earlier completed runs of {estimate.template}."
    plural = "run" if estimate.runs_seen == 1 else "runs"
    return f"Based on {estimate.runs_seen} earlier completed {plural} of {estimate.template}."


def _delta(predicted: float, actual: float) -> str:
    if not actual:
        return "-"
    percent = round((predicted - actual) / actual * 100)
    return f"{percent:+d}%" if percent else "0%"


def comparison_table(comparison: PredictedVsActual) -> Table:
    table = Table(title=f"Predicted (mean) vs actual · run {comparison.run_id}")
    for column in (
        "role",
        "predicted tokens",
        "actual tokens",
        "off by",
        "predicted cost",
        "actual cost",
    ):
        table.add_column(column, justify="left" if column == "role" else "right")
    for role in comparison.roles:
        table.add_row(
            role.role,
            _tokens(role.predicted_tokens.mean) if role.basis else "-",
            _tokens(role.actual_tokens),
            _delta(role.predicted_tokens.mean, role.actual_tokens) if role.basis else "-",
            _usd(role.predicted_cost_usd.mean) if role.basis else "-",
            _usd(role.actual_cost_usd),
        )
    table.add_section()
    estimate = comparison.estimate
    table.add_row(
        "total",
        _tokens(estimate.tokens.mean),
        _tokens(comparison.actual_tokens),
        _delta(estimate.tokens.mean, comparison.actual_tokens),
        _usd(estimate.cost_usd.mean),
        _usd(comparison.actual_cost_usd),
    )
    return table
