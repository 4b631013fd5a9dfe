"""Who does what: role -> system prompt, task queue, model, tools."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel

from core.contracts import agent_queue

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

NOTE_TOOLS = ("post_note", "wait_for_note")
"""Agents that run side by side tell each other what they need (e.g. the API contract)."""
WORKSPACE_TOOLS = ("write_file", "read_file", "list_files", "set_outputs", *NOTE_TOOLS)
VERDICT_TOOL = "submit_verdict"
REVIEW_TOOLS = (*WORKSPACE_TOOLS, VERDICT_TOOL)


DEFAULT_CONTEXT_TOKENS = 120_000
"""Input tokens a role's request may use: room for the answer within a 200K window."""


class Role(BaseModel):
    name: str
    title: str
    tools: tuple[str, ...] = WORKSPACE_TOOLS
    max_tokens: int = 8192
    context_tokens: int = DEFAULT_CONTEXT_TOKENS

    def tools_for(self, *, reviewing: bool) -> tuple[str, ...]:
        """The tools this role's agent is offered, and the only ones it may call.

        An agent reviewing another task's work gets the verdict tool whatever its role.
        """
        if reviewing and VERDICT_TOOL not in self.tools:
            return (*self.tools, VERDICT_TOOL)
        return self.tools

    @property
    def task_queue(self) -> str:
        return agent_queue(self.name)

    @property
    def prompt_file(self) -> Path:
        return PROMPTS_DIR / f"{self.name}.md"

    def system_prompt(self) -> str:
        return load_prompt(self.name)

    def assignment(self) -> str:
        """Tells an agent which of the handbook's roles it plays."""
        return (
            f"You are the {self.title} ({self.name}) of this team: follow the handbook's "
            f'section "Role: {self.name}".'
        )


ROLES: dict[str, Role] = {
    role.name: role
    for role in (
        Role(name="business_analyst", title="Business analyst"),
        Role(name="project_manager", title="Project manager"),
        Role(name="ux_engineer", title="UX engineer"),
        Role(name="tech_lead", title="Tech lead"),
        Role(name="database_engineer", title="Database engineer"),
        Role(name="backend_engineer", title="Backend engineer", max_tokens=16384),
        Role(name="frontend_engineer", title="Frontend engineer", max_tokens=16384),
        Role(name="code_reviewer", title="Code reviewer", tools=REVIEW_TOOLS),
        Role(name="security_reviewer", title="Security reviewer", tools=REVIEW_TOOLS),
        Role(name="data_scientist", title="Data scientist"),
        Role(name="cleanup_agent", title="Cleanup agent"),
        # Checks each task's work and only submits a result: it reads, never writes.
        Role(
            name="validator",
            title="Validator",
            tools=("read_file", "list_files", "submit_validation"),
            max_tokens=4096,
        ),
    )
}


@cache
def load_prompt(role: str) -> str:
    """The role's system prompt, read from `prompts/<role>.md`."""
    try:
        return (PROMPTS_DIR / f"{role}.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeyError(f"no system prompt for role {role!r} in {PROMPTS_DIR}") from exc


HANDBOOK_PREAMBLE = """\
You are one agent of a software delivery team that turns a user's goal into a working
repository. Several agents work on the same goal, each in its own role, and share a
workspace of files. This handbook describes every role, so you know what your teammates
deliver and what they expect from you; your task message says which role is yours.
"""


@cache
def team_handbook() -> str:
    """The system prompt every agent shares: one cacheable prefix for all agents of a run.

    Role-specific system prompts would make each role's prefix different, so nothing after
    them (the goal, the upstream artifacts) could be shared between agents through the
    provider's prompt cache. The role an agent plays is named in its task message instead.
    """
    sections = [HANDBOOK_PREAMBLE]
    for role in ROLES.values():
        sections.append(f"## Role: {role.name} ({role.title})\n\n{role.system_prompt().strip()}")
    return "\n\n".join(sections) + "\n"


def get_role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise KeyError(f"unknown role {name!r}; known roles: {', '.join(ROLES)}") from None
