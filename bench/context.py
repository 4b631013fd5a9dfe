"""Input tokens per run with and without context management, on the Anthropic wire format.

    .venv/bin/python -m bench.context

Runs two workloads through the real `anthropic` SDK against the loopback Messages API
server of the tests (`tests/fakes/messages_api.py`, which also models the prompt cache and
counts 4 characters a token), each once with CONTEXT_MANAGEMENT on and once off:

- `sdlc`: the standard template, every artifact small enough to fit whole;
- `big upstream`: the `branches` test template where the analyst writes a ~300K-token
  file every later agent builds on.

Prints per run: model calls, input tokens sent (uncached + cache write + cache read),
the largest single request, and the cost at list prices. A request over 200K tokens
would be refused by the real API ("prompt is too long"); the fake answers it anyway so
the figures can be compared.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from agents.providers.anthropic import AnthropicProvider
from agents.roles import ROLES
from bench.common import dev_server, sqlite_database
from core.contracts import Usage
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import start_run
from core.persistence import storage
from core.services.runs import final_state
from core.services.templates import load_template
from tests.fakes.loopback import ReplyLike, estimate_tokens, role_of
from tests.fakes.messages_api import FakeMessagesAPI, text_message, tool_use_message
from workers.main import serving
from workflows.dsl import compile_plan

GOAL = "Build a task management API with user authentication"
BRANCHES = Path(__file__).resolve().parent.parent / "tests" / "templates" / "branches.yaml"
BIG_FILE = "".join(
    f"## Record {n}\nfield_{n}: value {n} " + "lorem ipsum dolor " * 2 + "\n" for n in range(15_700)
)


def big_upstream(api: FakeMessagesAPI) -> Any:
    def respond(request: dict[str, Any]) -> ReplyLike:
        role = role_of(request)
        if role == "summarizer":
            return text_message("Summary: records with numbered fields and values.")
        if role == "business_analyst" and len(request["messages"]) == 1:
            return tool_use_message("write_file", {"path": "docs/dataset.md", "content": BIG_FILE})
        return api.default_responder(request)

    return respond


async def measure(template: str, big: bool, managed: bool) -> dict[str, Any]:
    settings = Settings(CONTEXT_MANAGEMENT=managed)
    with FakeMessagesAPI() as api, tempfile.TemporaryDirectory() as tmp:
        if big:
            api.responder = big_upstream(api)
        provider = AnthropicProvider(
            api_key="bench", model="claude-sonnet-4-6", base_url=api.base_url
        )
        db = sqlite_database(Path(tmp))
        plan = compile_plan(
            load_template(template, ROLES), goal=GOAL, run_id=uuid.uuid4().hex, roles=ROLES
        )
        async with (
            dev_server() as env,
            serving(env.client, db=db, provider=provider, settings=settings),
        ):
            state = await final_state(db, await start_run(env.client, plan))
        entries = await storage.ledger_entries(db, f"run-{plan.run_id}")
        await db.dispose()
        await provider.aclose()
        bodies = [r.body for r in api.requests if r.path == "/v1/messages"]
    usage = sum((storage.entry_usage(e) for e in entries), Usage())
    return {
        "status": state.status.value,
        "calls": len(entries),
        "sent": usage.input_tokens
        + usage.cache_read_input_tokens
        + usage.cache_creation_input_tokens,
        "cache_read": usage.cache_read_input_tokens,
        "largest": max(
            estimate_tokens([b.get("system"), b["messages"], b.get("tools")]) for b in bodies
        ),
        "cost": sum(e.cost_usd for e in entries),
    }


async def main() -> None:
    rows = []
    for name, template, big in (("sdlc", "sdlc", False), ("big upstream", str(BRANCHES), True)):
        for managed in (True, False):
            f = await measure(template, big, managed)
            rows.append(
                f"{name:<14} {'on' if managed else 'off':<13} {f['status']:<10} {f['calls']:>5} "
                f"{f['sent']:>11,} {f['cache_read']:>11,} {f['largest']:>12,} {f['cost']:>9.4f}"
            )
    # After all runs: the dev servers print their banners on the way.
    print(
        f"{'workload':<14} {'context mgmt':<13} {'status':<10} {'calls':>5} "
        f"{'input sent':>11} {'cache read':>11} {'largest req':>12} {'cost USD':>9}"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    asyncio.run(main())
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
