"""Write a run's workspace out as a repository, with a provenance file a human can read."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from core.contracts import RunState
from core.persistence import storage
from core.persistence.db import Database
from core.services.graph import run_mermaid
from core.services.runs import stored_state

OFFLINE_PROVIDER = "offline"


def is_within(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


async def provenance_markdown(
    db: Database, run_id: str, workflow_id: str, state: RunState | None = None
) -> str:
    """Which model produced each file and what each task cost, from the ledger, and the
    run's graph from `state` (default: the final state its row recorded)."""
    files = await storage.latest_artifacts(db, run_id)
    entries = await storage.ledger_entries(db, workflow_id)
    per_task: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    providers: dict[str, str] = {}
    for entry in entries:
        totals = per_task[entry.task_id]
        totals["calls"] += 1
        totals["input"] += entry.input_tokens + entry.cache_read_tokens + entry.cache_write_tokens
        totals["output"] += entry.output_tokens
        totals["cost"] += entry.cost_usd
        providers[entry.task_id] = f"{entry.model} ({entry.provider})"
    lines = [
        "# Provenance",
        "",
        f"Run `{run_id}`. Every file below was written by an agent; this page says which "
        "model produced it and what each task cost.",
    ]
    if any(e.provider == OFFLINE_PROVIDER for e in entries):
        lines += [
            "",
            "**Offline model:** files marked `offline` come from the deterministic offline "
            "model (templates, no LLM was called, no cost).",
        ]
    lines += await _graph_section(db, run_id, state)
    lines += [
        "",
        "| task | model | calls | input tokens | output tokens | cost (USD) |",
        "|---|---|---|---|---|---|",
    ]
    for task_id, totals in per_task.items():
        lines.append(
            f"| {task_id} | {providers[task_id]} | {int(totals['calls'])} | {int(totals['input'])} "
            f"| {int(totals['output'])} | {totals['cost']:.4f} |"
        )
    total_cost = sum(e.cost_usd for e in entries)
    lines += [
        "",
        f"Total cost: ${total_cost:.4f}",
        "",
        "| file | task | role | model | version | sha256 |",
        "|---|---|---|---|---|---|",
    ]
    for artifact in files:
        lines.append(
            f"| {artifact.path} | {artifact.task_id} | {artifact.role} | {artifact.model} "
            f"| {artifact.version} | {artifact.sha256[:12]} |"
        )
    return "\n".join(lines) + "\n"


async def _graph_section(db: Database, run_id: str, state: RunState | None) -> list[str]:
    """The run's tasks and how each ended, as a Mermaid flowchart GitHub and GitLab draw."""
    if state is None:
        run = await storage.get_run(db, run_id)
        state = stored_state(run) if run is not None else None
    if state is None:
        return ["", f"The run is still going: `orchestrator graph {run_id}` draws its plan."]
    return ["", "## Plan", "", "```mermaid", run_mermaid(state).rstrip("\n"), "```"]


async def export_repository(
    db: Database, run_id: str, workflow_id: str, out_dir: Path, state: RunState | None = None
) -> list[Path]:
    """Write the newest version of every file, plus PROVENANCE.md (with the graph of
    `state`, default the run's recorded final state); returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for artifact in await storage.latest_artifacts(db, run_id):
        target = out_dir / artifact.path
        if not is_within(out_dir, target):
            continue  # normalize_path already refuses these; never trust stored paths blindly
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(artifact.content, encoding="utf-8")
        written.append(target)
    provenance = out_dir / "PROVENANCE.md"
    provenance.write_text(
        await provenance_markdown(db, run_id, workflow_id, state), encoding="utf-8"
    )
    written.append(provenance)
    return written
