"""`when` conditions: branch on an earlier task's outputs, without `eval`.

Grammar (one clause): ``[not] TASK.KEY [(== | !=) LITERAL]`` where LITERAL is
true, false, null, a number, or a (quoted or bare) string.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

_CLAUSE = re.compile(
    r"^\s*(?P<neg>not\s+)?(?P<task>[A-Za-z_][\w-]*)\.(?P<key>[A-Za-z_]\w*)"
    r"(?:\s*(?P<op>==|!=)\s*(?P<lit>.+?))?\s*$"
)


class ConditionError(ValueError):
    pass


@dataclass(frozen=True)
class Condition:
    task: str
    key: str
    negate: bool = False
    op: str | None = None
    literal: Any = None

    def evaluate(self, outputs: dict[str, dict[str, Any]]) -> bool:
        value = outputs.get(self.task, {}).get(self.key)
        if self.op is None:
            result = bool(value)
        elif self.op == "==":
            result = value == self.literal
        else:
            result = value != self.literal
        return not result if self.negate else result


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def parse_condition(text: str) -> Condition:
    match = _CLAUSE.match(text or "")
    if not match:
        raise ConditionError(
            f"cannot parse condition {text!r}; expected '[not] task.key [== value]'"
        )
    return Condition(
        task=match["task"],
        key=match["key"],
        negate=bool(match["neg"]),
        op=match["op"],
        literal=_literal(match["lit"]) if match["lit"] is not None else None,
    )
