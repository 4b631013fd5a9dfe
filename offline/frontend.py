"""The frontend engineer's static client: `index.html` and an `app.js` built against the
backend's API contract."""

from __future__ import annotations

import json

from offline.blueprint import EntityField, FieldKind
from offline.contract import api_contract_from
from offline.job import Deliverable, Job
from offline.templates import render, template

_INPUT_ATTRS: dict[FieldKind, str] = {
    "str": 'type="text" maxlength="200"',
    "bool": 'type="checkbox"',
    "int": 'type="number" min="0" step="1"',
    "float": 'type="number" min="0" step="0.01"',
    "date": 'type="date"',
}


def _form_field(f: EntityField) -> str:
    attrs = _INPUT_ATTRS[f.kind] + (" required" if f.required else "")
    if f.kind == "bool":
        return f'      <label class="check"><input name="{f.name}" {attrs}> {f.label}</label>'
    return f'      <label>{f.label} <input name="{f.name}" {attrs}></label>'


def frontend_engineer(job: Job) -> Deliverable:
    bp = job.blueprint
    e = bp.entity
    fields = [
        {"name": f.name, "label": f.label, "kind": f.kind, "required": f.required} for f in e.fields
    ]
    html = render(
        "frontend/index.html",
        project=bp.project,
        auth_panel=template("frontend/index/auth_panel.html") if bp.auth else "",
        plural_title=e.plural_words.capitalize(),
        form_fields="\n".join(_form_field(f) for f in e.fields),
        entity_words=e.words,
        plural_words=e.plural_words,
    )
    js = render(
        "frontend/app.js",
        project=bp.project,
        route=e.route,
        auth_required=json.dumps(bp.auth),
        entity_words=e.words,
        fields_json="[\n" + "".join(f"  {json.dumps(f)},\n" for f in fields) + "]",
        plural_words=e.plural_words,
        entity_title=e.words.capitalize(),
    )
    contract = api_contract_from(job.notes)
    if contract is not None:
        note, lines = contract
        # Built against what the backend said, not only the plan: say so where it is used.
        js = (
            f"// API contract from {note.from_task} ({note.from_role}), note #{note.seq} "
            f'"{note.subject}":\n' + "".join(f"//   {line}\n" for line in lines) + js
        )
    return Deliverable({"frontend/index.html": html, "frontend/app.js": js})
