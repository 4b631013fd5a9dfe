"""Who does what: role -> system prompt, task queue, model, tools."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from pydantic import BaseModel

from agents.commands import COMMAND_TOOL
from agents.editor import EDIT_TOOL
from core.contracts import BREAKDOWN_TOOL, agent_queue

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

NOTE_TOOLS = ("post_note", "wait_for_note")
"""Agents that run side by side tell each other what they need (e.g. the API contract)."""
WORKSPACE_TOOLS = ("write_file", "read_file", "list_files", "set_outputs", *NOTE_TOOLS)
VERDICT_TOOL = "submit_verdict"
REVIEW_TOOLS = (*WORKSPACE_TOOLS, VERDICT_TOOL, COMMAND_TOOL)
"""Reviewers may run the tests and tools too; what their commands change is not kept."""
ENGINEER_TOOLS = (*WORKSPACE_TOOLS, EDIT_TOOL, COMMAND_TOOL)
"""Implementers run their code and edit in place (agents/editor.py, agents/commands.py)."""


DEFAULT_CONTEXT_TOKENS = 120_000
"""Input tokens a role's request may use: room for the answer within a 200K window."""


class Role(BaseModel):
    name: str
    title: str
    tools: tuple[str, ...] = WORKSPACE_TOOLS
    max_tokens: int = 8192
    context_tokens: int = DEFAULT_CONTEXT_TOKENS
    keeps_command_changes: bool = True
    """False: files its commands change are thrown away (reviewers judge, they don't fix)."""

    def tools_for(self, *, reviewing: bool, planning: bool = False) -> tuple[str, ...]:
        """The tools this role's agent is offered, and the only ones it may call.

        An agent reviewing another task's work gets the verdict tool whatever its role; the
        task a stage expands from gets the work breakdown tool.
        """
        tools = self.tools
        if reviewing and VERDICT_TOOL not in tools:
            tools = (*tools, VERDICT_TOOL)
        if planning and BREAKDOWN_TOOL not in tools:
            tools = (*tools, BREAKDOWN_TOOL)
        return tools

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
        Role(name="database_engineer", title="Database engineer", tools=ENGINEER_TOOLS),
        Role(
            name="backend_engineer",
            title="Backend engineer",
            tools=ENGINEER_TOOLS,
            max_tokens=16384,
        ),
        Role(
            name="frontend_engineer",
            title="Frontend engineer",
            tools=ENGINEER_TOOLS,
            max_tokens=16384,
        ),
        Role(
            name="code_reviewer",
            title="Code reviewer",
            tools=REVIEW_TOOLS,
            keeps_command_changes=False,
        ),
        Role(
            name="security_reviewer",
            title="Security reviewer",
            tools=REVIEW_TOOLS,
            keeps_command_changes=False,
        ),
        Role(name="data_scientist", title="Data scientist", tools=ENGINEER_TOOLS),
        Role(name="cleanup_agent", title="Cleanup agent", tools=ENGINEER_TOOLS),
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


@dataclass(frozen=True)
class Sandbox:
    """What generated code can use where it runs. The caller reads it from the environment
    that runs the checks: this room cannot see that environment."""

    python: str
    """The interpreter's version."""
    packages: tuple[tuple[str, str], ...]
    """(distribution name, version) of every installed Python package."""


SANDBOX_HEADING = "## The sandbox"


@cache
def team_handbook(sandbox: Sandbox | None = None) -> str:
    """The system prompt every agent shares: one cacheable prefix for all agents of a run.

    Role-specific system prompts would make each role's prefix different, so nothing after
    them (the goal, the upstream artifacts) could be shared between agents through the
    provider's prompt cache. The role an agent plays is named in its task message instead.
    """
    sections = [HANDBOOK_PREAMBLE]
    for role in ROLES.values():
        sections.append(f"## Role: {role.name} ({role.title})\n\n{role.system_prompt().strip()}")
    if sandbox is not None:
        sections.append(sandbox_section(sandbox))
    return "\n\n".join(sections) + "\n"


def own_prompt(role: Role, sandbox: Sandbox | None = None) -> str:
    """A role's system prompt alone, where no prompt cache rewards sharing the handbook."""
    prompt = role.system_prompt()
    return prompt if sandbox is None else f"{prompt.rstrip()}\n\n{sandbox_section(sandbox)}\n"


def sandbox_section(sandbox: Sandbox) -> str:
    """What the sandbox offers, the same text for every agent: sorted, so the prompt stays
    one cacheable prefix whatever order the caller read the packages in."""
    packages = ", ".join(f"{name} {version}" for name, version in sorted(sandbox.packages))
    return (
        f"{SANDBOX_HEADING}\n\n"
        "The sandbox where your code runs (its tests, your commands) has no network, so nothing "
        f"can be installed there. It runs Python {sandbox.python} with the standard library and "
        f"these Python packages installed: {packages}. It has no npm packages. Depend only on "
        "these: a dependency file (requirements*.txt, pyproject.toml, package.json) that names "
        "anything else is a HIGH finding, and code that imports it fails its tests."
    )


def get_role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise KeyError(f"unknown role {name!r}; known roles: {', '.join(ROLES)}") from None
