"""The offline model: a deterministic stand-in for an LLM, so the whole pipeline runs without
a network, an API key or any cost.

It plays every agent role from templates (`offline/files/`): on its first turn it writes the
role's deliverables (a real FastAPI service with passing tests for the backend engineer,
reviews that actually scan the delivered code for the reviewers) and records the role's
outputs; once the tool results come back it ends the turn with a summary.

Offered the editor and command tools, the backend engineer uses them as an engineer would
(`run_and_fix`): it writes the service and its tests with one deliberate defect, runs the
tests in the sandbox, reads the failure from the output (`pytest_report`), fixes it with an
exact-string edit and runs the tests again before it ends.

Where backend and frontend engineers run side by side (peers in the task message), the
backend engineer posts its API contract to the frontend with `post_note`, and the frontend
engineer first calls `wait_for_note`, then builds its API client against the note it got.

Every file it writes starts with a line saying it came from the offline model, so nobody
mistakes template output for model output.

How it is laid out: `blueprint` reads the goal; one generator module per kind of
deliverable (`documents`, `schema`, `backend`, `frontend`, `analytics`, `reviews`,
`repository`), registered by role in `roster`; `turn` and the plays (`summarizer`,
`contract`, `run_and_fix`, `delivery`, `report`) decide what each model call answers;
`provider` puts it behind the `LLMProvider` protocol.
"""

from offline.job import ROLE_DELIVERABLES, Deliverable
from offline.provider import OFFLINE_MODEL, OfflineProvider
from offline.roster import deliverables
from offline.validation import validation_input

__all__ = [
    "OFFLINE_MODEL",
    "ROLE_DELIVERABLES",
    "Deliverable",
    "OfflineProvider",
    "deliverables",
    "validation_input",
]
