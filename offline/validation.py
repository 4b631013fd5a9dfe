"""The offline validator's judgement of the files a task delivered."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from offline.labels import strip_label


def validation_input(delivered: Mapping[str, str]) -> dict[str, Any]:
    """The offline validator's `submit_validation` input for the files a task delivered.

    It cannot judge substance, so it checks what it can deterministically: the task
    delivered files, and none of them is empty (its own label line aside).
    """
    issues = [
        f"{path} is empty: write its full content with write_file."
        for path, content in sorted(delivered.items())
        if not strip_label(content).strip()
    ]
    if not delivered:
        issues.append(
            "The task delivered no files: write every deliverable its role's contract names "
            "with write_file."
        )
    return {
        "passed": not issues,
        "issues": issues,
        "summary": f"{len(delivered)} delivered files checked: "
        + ("all have content." if not issues else f"{len(issues)} issues."),
    }
