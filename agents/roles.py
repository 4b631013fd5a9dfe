"""Who does what: role -> system prompt, task queue, model, tools."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from pydantic import BaseModel

from core.contracts import agent_queue

PROMPTS_DIR = Path(__file__).resolve().parent.parent / "prompts"

WORKSPACE_TOOLS = ("write_file", "read_file", "list_files", "set_outputs")
REVIEW_TOOLS = (*WORKSPACE_TOOLS, "submit_verdict")


class Role(BaseModel):
    name: str
    title: str
    tools: tuple[str, ...] = WORKSPACE_TOOLS
    max_tokens: int = 8192

    @property
    def task_queue(self) -> str:
        return agent_queue(self.name)

    @property
    def prompt_file(self) -> Path:
        return PROMPTS_DIR / f"{self.name}.md"

    def system_prompt(self) -> str:
        return load_prompt(self.name)


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
    )
}


@cache
def load_prompt(role: str) -> str:
    """The role's system prompt, read from `prompts/<role>.md`."""
    try:
        return (PROMPTS_DIR / f"{role}.md").read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise KeyError(f"no system prompt for role {role!r} in {PROMPTS_DIR}") from exc


def get_role(name: str) -> Role:
    try:
        return ROLES[name]
    except KeyError:
        raise KeyError(f"unknown role {name!r}; known roles: {', '.join(ROLES)}") from None
