"""The data scientist's metrics: a pure-Python `analytics/metrics.py` whose doctests run on
sample records, and the document that explains each metric."""

from __future__ import annotations

from typing import Any

from offline.blueprint import sample_record
from offline.fragments import md_table_rows, py_literal, py_tuple
from offline.job import Deliverable, Job
from offline.templates import render

_FREE_TEXT = frozenset(
    ["description", "body", "notes", "ingredients", "email", "phone", "sku", "bio"]
)


def data_scientist(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    kinds: dict[str, list[str]] = {"bool": [], "numeric": [], "category": [], "date": []}
    for f in e.fields:
        if f.kind == "bool":
            kinds["bool"].append(f.name)
        elif f.kind in ("int", "float"):
            kinds["numeric"].append(f.name)
        elif f.kind == "date":
            kinds["date"].append(f.name)
        elif not f.required and f.name not in _FREE_TEXT:
            kinds["category"].append(f.name)
    by_name = {f.name: f for f in e.fields}
    # Expected doctest values for SAMPLE, whose two records use sample variants 0 and 1.
    examples: list[tuple[str, Any]] = []
    if kinds["bool"]:
        examples.append((f"{kinds['bool'][0]}_rate", 0.5))
    if kinds["numeric"]:
        low, high = (float(by_name[kinds["numeric"][0]].sample(v)) for v in (0, 1))
        examples.append(
            (kinds["numeric"][0], {"min": low, "mean": round((low + high) / 2, 3), "max": high})
        )
    if kinds["category"]:
        name = kinds["category"][0]
        examples.append((f"{name}_counts", {by_name[name].sample(v): 1 for v in (0, 1)}))
    if kinds["date"]:
        first, last = (by_name[kinds["date"][0]].sample(v) for v in (0, 1))
        examples.append((kinds["date"][0], {"with_value": 2, "first": first, "last": last}))
    doctest_lines = "".join(f'\n    >>> summary["{key}"]\n    {value!r}' for key, value in examples)
    metric_rows = (
        [
            (f"`{n}_rate`", f"Share of {e.plural_words} with `{n}` true (0-1).")
            for n in kinds["bool"]
        ]
        + [(f"`{n}`", f"min / mean / max of `{n}`.") for n in kinds["numeric"]]
        + [
            (
                f"`{n}_counts`",
                f"{e.plural_words.capitalize()} per `{n}` value, most frequent first.",
            )
            for n in kinds["category"]
        ]
        + [
            (f"`{n}`", f"How many {e.plural_words} have `{n}`, first and last value.")
            for n in kinds["date"]
        ]
    )
    code = render(
        "analytics/metrics.py",
        plural_words=e.plural_words,
        boolean_fields=py_tuple(kinds["bool"]) if kinds["bool"] else "()",
        numeric_fields=py_tuple(kinds["numeric"]) if kinds["numeric"] else "()",
        category_fields=py_tuple(kinds["category"]) if kinds["category"] else "()",
        date_fields=py_tuple(kinds["date"]) if kinds["date"] else "()",
        sample=py_literal([sample_record(e, 0), sample_record(e, 1)]),
        doctest_lines=doctest_lines,
    )
    doc = render(
        "analytics/metrics.md",
        project=bp.project,
        plural_words=e.plural_words,
        route=e.route,
        metric_rows=md_table_rows(metric_rows),
    )
    return Deliverable({"analytics/metrics.md": doc, "analytics/metrics.py": code})
