"""Input tokens per run with and without context management, on the Anthropic wire format.

    .venv/bin/python -m bench.context [--repo-map] [--map-budget 4000]

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

Then a second table, the repository map (`agents.repomap`): a generated repository of
~200 Python files (10 packages of modules with classes, methods, docstrings, and their
tests), and the tokens of an engineer's first request (its system prompt and task message,
counted as above) with every file whole against with the map in their place, at
`--map-budget` tokens. `--repo-map` prints that table alone (no runs, a second or two).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from agents.context import UpstreamFile, build_task_message
from agents.providers.anthropic import AnthropicProvider
from agents.repomap import build_outline, render_map
from agents.roles import ROLES, get_role, own_prompt
from bench.common import dev_server, sqlite_database
from core.contracts import Usage
from core.contracts.repositories import REPOSITORY_TASK
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


async def measure(
    template: str, big: bool, managed: bool, fixed: bool = False, goal: str = GOAL
) -> dict[str, Any]:
    """One run's figures on the wire; `fixed` keeps the template's tasks where a planner's
    work breakdown would expand a stage."""
    settings = Settings(CONTEXT_MANAGEMENT=managed)
    with FakeMessagesAPI() as api, tempfile.TemporaryDirectory() as tmp:
        if big:
            api.responder = big_upstream(api)
        provider = AnthropicProvider(
            api_key="bench", model="claude-sonnet-4-6", base_url=api.base_url
        )
        db = sqlite_database(Path(tmp))
        plan = compile_plan(
            load_template(template, ROLES), goal=goal, run_id=uuid.uuid4().hex, roles=ROLES
        )
        if fixed:
            plan.stages = []
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
        "tasks": len(state.tasks),
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


PACKAGES = {  # package: (entity, actions its routes offer)
    "accounts": ("Account", ("register", "close", "rename", "verify")),
    "auth": ("Session", ("login", "logout", "refresh", "revoke")),
    "billing": ("Invoice", ("issue", "pay", "void", "remind")),
    "catalog": ("Product", ("publish", "retire", "price", "tag")),
    "inventory": ("Stock", ("reserve", "release", "count", "restock")),
    "orders": ("Order", ("checkout", "cancel", "refund", "track")),
    "shipping": ("Shipment", ("dispatch", "deliver", "recall", "label")),
    "notifications": ("Notice", ("send", "mute", "retry", "digest")),
    "reports": ("Report", ("compile", "export", "schedule", "archive")),
    "search": ("Query", ("index", "suggest", "rank", "purge")),
}
LAYERS = (
    "models",
    "schemas",
    "repository",
    "service",
    "routes",
    "events",
    "tasks",
    "validators",
    "errors",
)
MAP_GOAL = "Add per-customer rate limiting to the order checkout route"
MAP_TASK = "Limit how often one customer may check out, answering 429 with Retry-After when over."
MAP_TARGET = "shop/orders/routes.py"


def module_text(package: str, layer: str) -> str:
    """One module: a docstring, imports, two classes of five methods, four functions."""
    entity, actions = PACKAGES[package]
    lines = [f'"""The {layer} of {package}: what the {entity.lower()} {layer} layer does."""', ""]
    lines += ["from __future__ import annotations", "", "from shop.db import Session"]
    lines += [f"from shop.{package}.models import {entity}", "", ""]
    for kind in ("", "Manager"):
        lines += [
            f"class {entity}{layer.title().rstrip('s')}{kind}:",
            f'    """{layer.title()} of one {" ".join(filter(None, (entity, kind))).lower()}."""',
            "",
            "    def __init__(self, session: Session, *, limit: int = 100) -> None:",
            "        self.session = session",
            "        self.limit = limit",
            "",
        ]
        for action in actions:
            lines += method_text(package, entity, action)
    for action in actions:
        route = f'@router.post("/{package}/{{item_id}}/{action}")'
        lines += ["", *([route] if layer == "routes" else [])]
        lines += [
            f"def {action}_{entity.lower()}(item_id: int, session: Session) -> dict[str, str]:",
            f'    """{action.title()} one {entity.lower()} by its id."""',
            f"    found = session.get({entity}, item_id)",
            f"    return {{'status': '{action}', 'id': str(found.id)}}",
            "",
        ]
    return "\n".join(lines) + "\n"


def method_text(package: str, entity: str, action: str) -> list[str]:
    return [
        f"    async def {action}(self, item: {entity}, reason: str = '') -> {entity}:",
        f'        """{action.title()} the {entity.lower()} and record why."""',
        "        if item.id is None:",
        f"            raise ValueError('{action}: the {entity.lower()} has no id yet')",
        "        if not reason:",
        f"            reason = '{action} requested'",
        f"        seen = await self.session.count('{package}.{action}', item.id)",
        "        if seen >= self.limit:",
        f"            raise RuntimeError(f'{action}: {{seen}} calls for {{item.id}}')",
        f"        await self.session.log('{package}.{action}', item.id, reason)",
        "        return item",
        "",
    ]


def tests_text(package: str, layer: str) -> str:
    """The module's tests: one per action."""
    entity, actions = PACKAGES[package]
    call = f"{actions[0]}_{entity.lower()}"
    lines = ["import pytest", "", f"from shop.{package}.{layer} import {call}", ""]
    for action in actions:
        lines += [
            "",
            f"def test_{action}_{entity.lower()}_{layer}(session: object) -> None:",
            f"    answer = {call}(1, session)",
            f"    assert answer['status'] == '{actions[0]}'",
            "    assert answer['id'] == '1'",
        ]
    return "\n".join(lines) + "\n"


def synthetic_repository() -> dict[str, str]:
    """~200 files: 10 packages of 10 modules, their tests, and the app's few shared files."""
    files = {
        "README.md": "# shop\n\nAn online shop: accounts, catalog, orders, billing, shipping.\n",
        "pyproject.toml": '[project]\nname = "shop"\nversion = "1.0"\n',
        "shop/__init__.py": '"""The shop."""\n',
        "shop/db.py": '"""Database sessions."""\n\n\nclass Session:\n    """One unit of work."""\n',
        "tests/__init__.py": "",
        "tests/conftest.py": "import pytest\n",
    }
    for package in PACKAGES:
        files[f"shop/{package}/__init__.py"] = f'"""The {package} of the shop."""\n'
        files[f"tests/{package}/__init__.py"] = ""
        for layer in LAYERS:
            files[f"shop/{package}/{layer}.py"] = module_text(package, layer)
            files[f"tests/{package}/test_{layer}.py"] = tests_text(package, layer)
    return files


def first_request_tokens(upstream: list[UpstreamFile]) -> int:
    """Input tokens of the engineer's first request: its system prompt and task message."""
    message = build_task_message(
        goal=MAP_GOAL,
        task_id="implement",
        role="backend_engineer",
        description=MAP_TASK,
        upstream=upstream,
    )
    system = own_prompt(get_role("backend_engineer"))
    return estimate_tokens([system, [{"role": "user", "content": message}]])


def repository_map_table(budget: int) -> None:
    files = synthetic_repository()
    started = time.perf_counter()
    outline = build_outline(files)
    built = time.perf_counter()
    text = render_map(outline, f"{MAP_GOAL}\n{MAP_TASK}", budget)
    rendered = time.perf_counter()
    whole = first_request_tokens(
        [UpstreamFile(path=p, task_id=REPOSITORY_TASK, content=c) for p, c in files.items()]
    )
    mapped = first_request_tokens(
        [UpstreamFile(path="repository-map.md", task_id=REPOSITORY_TASK, content=text)]
    )
    outlined = re.findall(r"^### (\S+) ", text, re.M)
    folded = len(re.findall(r"/ \(\d+ files?\)$", text, re.M))
    lines = sum(len(c.splitlines()) for c in files.values())
    print(
        f"repository: {len(files)} files ({sum(p.endswith('.py') for p in files)} Python), "
        f"{lines:,} lines, {sum(len(c) for c in files.values()):,} characters; "
        f"outline built in {(built - started) * 1000:.0f} ms, map rendered in "
        f"{(rendered - built) * 1000:.0f} ms"
    )
    print(f"{'first request carries':<30} {'input tokens':>12}  what of the repository")
    print(f"{'nothing (prompt and task)':<30} {first_request_tokens([]):>12,}  -")
    print(f"{'every file whole':<30} {whole:>12,}  {len(files)} files")
    print(
        f"{f'repository map ({budget:,} budget)':<30} {mapped:>12,}  tree of {len(files)} files "
        f"({folded} folders folded), "
        f"{len(outlined)} outlined; {MAP_TARGET} ranked "
        f"{outlined.index(MAP_TARGET) + 1 if MAP_TARGET in outlined else 'not shown'}"
    )


async def workloads() -> None:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repo-map", action="store_true", help="the repository map table only")
    parser.add_argument("--map-budget", type=int, default=4000, help="the map's tokens")
    args = parser.parse_args()
    if not args.repo_map:
        asyncio.run(workloads())
        print()
    repository_map_table(args.map_budget)


if __name__ == "__main__":
    main()
    # Leave without interpreter teardown: the Temporal runtime can abort it (sdk-python#300).
    sys.stdout.flush()
    os._exit(0)
