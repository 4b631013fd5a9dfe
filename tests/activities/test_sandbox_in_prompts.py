"""Every agent is told what the sandbox has: the stack the checks environment reports, in
the one handbook all agents share (so the prompt cache still covers it), and in each role's
own prompt where the provider has no prompt cache."""

from __future__ import annotations

import importlib.metadata
import platform
import uuid
from typing import Any

from temporalio.testing import ActivityEnvironment

from activities.model_calls import ModelActivities
from agents.providers.anthropic import AnthropicProvider
from agents.providers.openai_compat import OpenAICompatibleProvider
from agents.roles import SANDBOX_HEADING, load_prompt
from core.contracts import ModelCallInput, TurnKey
from core.infrastructure.settings import ProviderSettings
from core.persistence.db import Database
from tests.fakes.messages_api import FakeMessagesAPI
from tests.fakes.openai_api import FakeOpenAIAPI

ROLES = ("backend_engineer", "code_reviewer")


def stack_line() -> str:
    """The section's list, as this environment's own metadata says it should read."""
    return f"It runs Python {platform.python_version()} with the standard library and these"


def mentions(system: str, *packages: str) -> bool:
    return all(f"{name} {importlib.metadata.version(name)}" in system for name in packages)


async def first_turns(activities: ModelActivities) -> None:
    """The first turn of one task of each role in `ROLES`, in one run."""
    run_id = uuid.uuid4().hex
    for role in ROLES:
        key = TurnKey(run_id=run_id, workflow_id=f"run-{run_id}", task_id=role, turn=0)
        call = ModelCallInput(key=key, role=role, goal="Build a todo API", response_cache=False)
        await ActivityEnvironment().run(activities.call_model, call)


async def test_the_shared_handbook_lists_the_stack_identically_for_every_role(
    sqlite_db: Database,
) -> None:
    with FakeMessagesAPI() as api:
        provider = AnthropicProvider(
            api_key="test-key", model="claude-sonnet-4-5", base_url=api.base_url
        )
        try:
            await first_turns(ModelActivities(sqlite_db, provider, ProviderSettings()))
        finally:
            await provider.aclose()
        bodies: list[dict[str, Any]] = [r.body for r in api.requests]

    assert len(bodies) == len(ROLES)
    backend, reviewer = ("".join(block["text"] for block in b["system"]) for b in bodies)
    assert backend == reviewer  # byte for byte: one cached prefix for all agents
    assert backend.count(SANDBOX_HEADING) == 1
    assert stack_line() in backend and "has no network" in backend
    assert mentions(backend, "fastapi", "pydantic", "pytest", "httpx")


async def test_a_role_prompt_without_a_prompt_cache_lists_the_stack_too(
    sqlite_db: Database,
) -> None:
    with FakeOpenAIAPI() as api:
        provider = OpenAICompatibleProvider(model="gpt-4.1-mini", base_url=api.base_url)
        try:
            await first_turns(ModelActivities(sqlite_db, provider, ProviderSettings()))
        finally:
            await provider.aclose()
        systems = [r.body["messages"][0]["content"] for r in api.requests]

    for role, system in zip(ROLES, systems, strict=True):
        assert system.startswith(load_prompt(role).rstrip())
        assert stack_line() in system
        assert mentions(system, "fastapi", "pytest")
