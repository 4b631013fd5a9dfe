"""The docs say what the code does: every command, setting, link and path they name exists.

Checked against the code: each `orchestrator …` command written in README.md, CONTRIBUTING.md
and docs/ parses (`--help` of its command path through typer's CliRunner on the real app)
with every option it shows; docs/cli.md lists every command and option of the CLI; the
settings tables of docs/operations.md hold exactly the settings of each section; every
relative link, anchor, repository path and `python -m` module they name exists.
"""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from typer.main import get_command
from typer.testing import CliRunner

from agents.roles import ROLES
from cli.main import app
from core.contracts import VALIDATOR_ROLE, WEBHOOK_EVENT_TYPES
from core.infrastructure.settings import SECTIONS
from tests.helpers import environment_names

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *DOCS]
ROOMS = "workflows|activities|agents|offline|checks|prompts|workers|api|cli|core|deploy|bench|tests"
REPO_PATH = re.compile(rf"^(?:{ROOMS})/[\w./-]*$")
WIDE_HELP = {"COLUMNS": "200", "TERMINAL_WIDTH": "200", "NO_COLOR": "1", "TERM": "dumb"}
NOT_COMMAND_OPTIONS = {"--install-completion", "--show-completion", "--help"}

# A command word: at the start, or after a shell operator; env assignments and a path
# (`.venv/bin/`) may come first. Alternatives (`approve|reject`) have no spaces round `|`.
COMMAND_START = r"(?:^|&&|;|\|\||\s\|\s|\$\()\s*(?:\$\s+)?(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?"
SHELL_END = re.compile(r"\s(?:&&|\|\||;|\||#)(?:\s|$)")
WORD = re.compile(r"^[a-z][a-z-]*(?:\|[a-z][a-z-]*)*$")


@dataclass(frozen=True)
class Snippet:
    page: Path
    text: str
    fenced: bool


def snippets(page: Path) -> Iterator[Snippet]:
    """Fenced code lines (continuations joined) and inline code spans (wrapped lines joined)."""
    prose: list[str] = []
    fence: list[str] | None = None
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.lstrip().startswith("```"):
            if fence is None:
                fence = []
            else:
                for joined in "\n".join(fence).replace("\\\n", " ").splitlines():
                    yield Snippet(page, joined.strip(), fenced=True)
                fence = None
            continue
        if fence is not None:
            fence.append(line)
        else:
            prose.append(line)
    for paragraph in re.split(r"\n\s*\n", "\n".join(prose)):
        for span in re.findall(r"`([^`]+)`", " ".join(paragraph.split("\n"))):
            yield Snippet(page, span.replace("\\|", "|").strip(), fenced=False)


def name_of(page: Path) -> str:
    return str(page.relative_to(ROOT)) if page.is_relative_to(ROOT) else page.name


def commands(snippet: Snippet, program: str) -> Iterator[list[str]]:
    """The argument lists given to `program` in a snippet (inline code: only at its start)."""
    start = COMMAND_START if snippet.fenced else r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*(?:\S*/)?"
    for found in re.finditer(start + re.escape(program) + r"\s+(.*)", snippet.text):
        rest = SHELL_END.split(found.group(1))[0]
        try:
            yield shlex.split(rest)
        except ValueError:  # an unbalanced quote in a synopsis: its words still count
            yield rest.split()


@dataclass(frozen=True)
class Usage:
    """One documented `orchestrator` command: its command words and the options it shows."""

    where: str
    words: tuple[str, ...]
    options: frozenset[str]


def usages(pages: list[Path]) -> list[Usage]:
    found = []
    for snippet in (s for page in pages for s in snippets(page)):
        for argv in commands(snippet, "orchestrator"):
            words = list(itertools.takewhile(WORD.match, argv))
            options = frozenset(
                re.sub(r"[\],.;:)]+$", "", token.lstrip("[").split("=", 1)[0])
                for token in argv
                if re.match(r"^\[?--[a-z]", token)
            )
            where = f"{name_of(snippet.page)}: `{snippet.text[:80]}`"
            for alternative in itertools.product(*(w.split("|") for w in words)):
                if alternative:
                    found.append(Usage(where, alternative, options))
    return found


def cli_tree() -> dict[tuple[str, ...], set[str]]:
    """Every command of the CLI (group or leaf) by its path, with its options."""
    tree: dict[tuple[str, ...], set[str]] = {}

    def walk(command: Any, path: tuple[str, ...]) -> None:
        options = {name for param in command.params for name in option_names(param)}
        tree[path] = options - NOT_COMMAND_OPTIONS
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(get_command(app), ())
    return tree


def option_names(param: Any) -> set[str]:
    """`--name` and, for a flag, `--no-name`; nothing for an argument."""
    return {name for name in (*param.opts, *param.secondary_opts) if name.startswith("--")}


def command_of(words: tuple[str, ...], tree: dict[tuple[str, ...], set[str]]) -> tuple[str, ...]:
    """The deepest command the words name; the rest are its arguments."""
    path: tuple[str, ...] = ()
    for word in words:
        if (*path, word) not in tree:
            break
        path = (*path, word)
    return path


def problems_of(found: list[Usage]) -> list[str]:
    """Each command that does not parse, and each option its command does not have."""
    runner = CliRunner()
    tree = cli_tree()
    problems = []
    for usage in found:
        shown = f"{usage.where}: `orchestrator {' '.join(usage.words)}`"
        result = runner.invoke(app, [*usage.words, "--help"], env=WIDE_HELP)
        if result.exit_code != 0 or "Usage" not in result.output:
            problems.append(f"{shown} does not parse")
            continue
        known = tree[command_of(usage.words, tree)] | {"--help"}
        problems += [f"{shown} has no {option}" for option in sorted(usage.options - known)]
    return problems


def test_every_documented_orchestrator_command_parses_with_its_options() -> None:
    found = usages(PAGES)
    problems = problems_of(found)
    assert not problems, "\n".join(problems)
    assert len(found) > 60 and {u.words[0] for u in found} >= {"run", "dlq", "tasks", "keys"}


def test_a_wrong_command_word_or_option_is_caught(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "Run `orchestrator approve|reject RUN_ID GATE [--coment C]` or\n"
        "`docker run orchestrator runs`:\n\n"
        "```bash\n"
        "TEMPORAL_ADDRESS=x .venv/bin/orchestrator dlq retyr R T && ls\n"
        "orchestrator tasks add RUN_ID --id a \\\n"
        "  --role tech_lead  # fine\n"
        "```\n"
    )
    found = usages([page])
    assert [u.words for u in found] == [
        ("dlq", "retyr"),
        ("tasks", "add"),
        ("approve",),
        ("reject",),
    ]
    assert found[1].options == {"--id", "--role"}
    problems = [problem.split(": `")[-1] for problem in problems_of(found)]
    assert problems == [
        "orchestrator dlq retyr` does not parse",
        "orchestrator approve` has no --coment",
        "orchestrator reject` has no --coment",
    ]


def test_the_cli_reference_lists_every_command_and_option() -> None:
    tree = cli_tree()
    documented: dict[tuple[str, ...], set[str]] = {}
    for usage in usages([ROOT / "docs" / "cli.md"]):
        documented.setdefault(command_of(usage.words, tree), set()).update(usage.options)
    missing = []
    for path in sorted(tree):
        command: Any = get_command(app)
        for word in path:
            command = command.commands[word]
        if getattr(command, "commands", None):
            continue  # a group: documented through its commands
        if path not in documented:
            missing.append(f"`orchestrator {' '.join(path)}`")
            continue
        for param in command.params:
            names = option_names(param)
            if names and not names & documented[path]:
                missing.append(f"`orchestrator {' '.join(path)} {sorted(names)[0]}`")
    assert not missing, "docs/cli.md does not show: " + ", ".join(missing)


def section_text(page: Path, heading: str) -> str:
    """The text under a `## heading`, up to the next heading of that level."""
    text = page.read_text(encoding="utf-8")
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else None]


def test_the_settings_tables_list_every_setting_under_its_section() -> None:
    documented: dict[str, set[str]] = {}
    section = None
    for line in section_text(ROOT / "docs" / "operations.md", "Settings").splitlines():
        heading = re.match(r"^###\s+`settings\.(\w+)`", line)
        if heading:
            section = heading.group(1)
            documented[section] = set()
        elif section and line.startswith("| `"):
            first_cell = line.split(" | ")[0]
            documented[section] |= set(re.findall(r"`([A-Z][A-Z0-9_]+)`", first_cell))
    assert set(documented) == set(SECTIONS), "one table per settings section"
    for name, settings_section in SECTIONS.items():
        code = environment_names(settings_section)
        assert documented[name] == code, (
            f"settings.{name}: undocumented {sorted(code - documented[name])}, "
            f"not settings of this section {sorted(documented[name] - code)}"
        )


def test_the_webhook_event_types_table_is_what_the_api_offers() -> None:
    table = section_text(ROOT / "docs" / "api.md", "Webhooks: run events pushed to your endpoints")
    rows = table[table.index("### Event types") :].split("\n\n")[1]
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", rows, re.M))
    assert documented == {str(event) for event in WEBHOOK_EVENT_TYPES}


def test_the_task_dsl_names_every_role() -> None:
    text = (ROOT / "docs" / "templates.md").read_text(encoding="utf-8")
    roles = text[text.index("\nRoles: ") :].split("(the registry")[0]
    assert set(re.findall(r"`(\w+)`", roles)) == set(ROLES) - {VALIDATOR_ROLE}


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    for heading in re.findall(r"^#+\s+(.+)$", page.read_text(encoding="utf-8"), re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
    return {s if i == 0 else f"{s}-{i}" for s, n in seen.items() for i in range(n)}


def test_links_and_anchors_resolve() -> None:
    broken = []
    for page in [*PAGES, ROOT / "CHANGELOG.md"]:
        prose = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)
        for target in re.findall(r"\]\(([^)\s]+)\)", prose):
            if re.match(r"^[a-z]+:", target):
                continue
            file_part, _, anchor = target.partition("#")
            linked = (page.parent / file_part).resolve() if file_part else page
            if not linked.exists():
                broken.append(f"{page.name}: {target} (no such file)")
            elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def test_repository_paths_and_modules_named_in_the_docs_exist() -> None:
    missing = []
    for snippet in (s for page in PAGES for s in snippets(page)):
        where = name_of(snippet.page)
        named = [snippet.text] if not snippet.fenced and REPO_PATH.match(snippet.text) else []
        if snippet.fenced:  # a file a command names, e.g. the test file pytest runs
            named = [t for t in snippet.text.split() if REPO_PATH.match(t) and t.endswith(".py")]
        missing += [f"{where}: {path}" for path in named if not (ROOT / path).exists()]
        for argv in commands(snippet, "python"):
            if argv[:1] == ["-m"] and len(argv) > 1 and re.match(f"^(?:{ROOMS})\\.", argv[1]):
                module = ROOT / argv[1].replace(".", "/")
                if not (module.with_suffix(".py").exists() or (module / "__init__.py").exists()):
                    missing.append(f"{where}: python -m {argv[1]}")
    assert not missing, "\n".join(missing)


def test_temporal_commands_name_their_server() -> None:
    unaddressed = [
        f"{name_of(snippet.page)}: `temporal {' '.join(argv)}`"
        for page in PAGES
        for snippet in snippets(page)
        for argv in commands(snippet, "temporal")
        if any(token.startswith("--") for token in argv) and "--address" not in argv
    ]
    assert not unaddressed, "\n".join(unaddressed)


def test_the_readme_is_a_front_door_into_the_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\]\((docs/[\w-]+\.md)", readme))
    assert len(readme.splitlines()) <= 200
    assert {f"docs/{page.name}" for page in DOCS} <= linked
