"""The repository's front page: the cleanup agent's README (layout and provenance of every
delivered file) and `.gitignore`."""

from __future__ import annotations

from offline.fragments import md_table_rows
from offline.job import ROLE_DELIVERABLES, Deliverable, Job
from offline.labels import provenance
from offline.templates import render, template

_FOLDERS = {
    "docs": "Requirements, delivery plan, UX design and architecture.",
    "db": "SQLite schema.",
    "backend": "FastAPI service and its pytest suite.",
    "frontend": "Static HTML/JS client for the API.",
    "reviews": "Code and security reviews of the delivered code.",
    "analytics": "Metrics over the records, in pure Python.",
}


def cleanup_agent(job: Job) -> Deliverable:
    bp = job.blueprint
    own = ROLE_DELIVERABLES["cleanup_agent"]
    files = sorted(set(job.upstream) - set(own))
    tops = sorted({p.split("/", 1)[0] for p in files if "/" in p})
    layout = [(f"`{top}/`", _FOLDERS.get(top, "Files delivered by the pipeline.")) for top in tops]
    layout += [("`README.md`", "This overview."), ("`.gitignore`", "Files git should not track.")]
    sources = [(f"`{p}`", *provenance(job.upstream[p])) for p in files]
    labelled_count = sum(agent != "not labelled" for _, agent, _ in sources)
    sources += [(f"`{p}`", job.author, f"{job.model} (offline)") for p in own]
    note = (
        "All files above come from the offline model: deterministic templates, no LLM was "
        "called, so the run cost $0.00."
        if labelled_count == len(files)
        else f"{labelled_count} of {len(files)} delivered files carry an offline label; the rest "
        "were written by a real model."
    )
    readme = render(
        "README.md",
        project=bp.project,
        goal=bp.goal,
        layout_rows=md_table_rows(layout),
        provenance_rows=md_table_rows(sources),
        provenance_note=note,
    )
    return Deliverable({"README.md": readme, ".gitignore": template("gitignore")})
