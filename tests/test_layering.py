"""The import layering of the product, read from the source with `ast`.

Workflow code replays, so it may import only what cannot do I/O: the standard library,
temporalio, pydantic and the contracts. Across the product, each package imports only
the packages below it (the table `MAY_IMPORT`), and no two packages import each other,
even through a third. Imports inside functions and `TYPE_CHECKING` blocks count too:
they are dependencies all the same.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from workflows.dag import find_cycle

ROOT = Path(__file__).resolve().parent.parent

NOT_PRODUCT = {"tests", "bench"}
"""Packages that may import everything: the suite and the benchmarks."""

WORKFLOW_IMPORTS = ("temporalio", "pydantic", "core.contracts", "workflows")
"""Besides the standard library: what `workflows/` may import."""

CORE_BASE = {"core.contracts", "core.persistence", "core.infrastructure"}
"""What every room may build on: contracts, where data lives, how processes connect."""

MAY_IMPORT: dict[str, set[str]] = {
    # core, lowest first: the contracts import nothing of the product. `core` itself only
    # holds the four parts: a module put directly in it may import nothing, nor be imported.
    "core": set(),
    "core.contracts": set(),
    "core.persistence": {"core.contracts"},
    "core.infrastructure": {"core.contracts"},
    # The services are the application layer the CLI, the API and the workers share: they
    # compile plans with the Task DSL and the role registry, pick the configured model
    # provider (the offline model among them) and call the workflow's handlers by
    # reference (`GoalWorkflow.status`). Nothing below imports them back.
    "core.services": {"workflows", "agents", "offline", *CORE_BASE},
    # The rooms built on core.
    "checks": CORE_BASE,
    "agents": CORE_BASE,
    "offline": {"agents", *CORE_BASE},
    "activities": {"agents", "checks", *CORE_BASE},
    "workflows": {"core.contracts"},
    # Processes: a worker hosts workflows and activities; the API serves; the CLI starts
    # either (`orchestrator up`, `serve`, `worker`), so it sits on top of both.
    "workers": {
        "activities",
        "agents",
        "checks",
        "offline",
        "workflows",
        "core.services",
        *CORE_BASE,
    },
    "api": {"agents", "workflows", "core.services", *CORE_BASE},
    "cli": {"api", "workers", "agents", "workflows", "core.services", *CORE_BASE},
    # Role prompts: data, loaded by name.
    "prompts": set(),
}
"""Package -> the packages it may import (its own modules are always allowed)."""


@dataclass(frozen=True)
class Import:
    path: Path
    line: int
    module: str

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} imports {self.module}"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name: str) -> bool:
    base = ROOT.joinpath(*name.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> list[Import]:
    """Every module `path` imports, once per line; `from pkg import mod` counts as `pkg.mod`."""
    return sorted(set(_imports(path)), key=lambda found: (found.line, found.module))


def _imports(path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(path, node.lineno, alias.name)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield Import(path, node.lineno, full if is_module(full) else base)


def product_files(package: str) -> list[Path]:
    base = ROOT.joinpath(*package.split("."))
    return sorted(p for p in base.rglob("*.py") if "migrations/versions" not in p.as_posix())


def unit_of(module: str) -> str | None:
    """The entry of `MAY_IMPORT` a module belongs to (the longest prefix), or None."""
    matches = [u for u in MAY_IMPORT if module == u or module.startswith(u + ".")]
    return max(matches, key=len, default=None)


def product_imports() -> Iterator[tuple[str, str, Import]]:
    """(importing unit, imported unit, the import) for each import between product units."""
    roots = {u.split(".")[0] for u in MAY_IMPORT}
    for root in sorted(roots):
        for path in product_files(root):
            source = unit_of(module_name(path))
            assert source is not None, f"{path.relative_to(ROOT)} is in no layer of MAY_IMPORT"
            for found in imports_of(path):
                if found.module.split(".")[0] not in roots:
                    continue  # the standard library and third-party packages
                target = unit_of(found.module)
                assert target is not None, f"{found}, which is in no layer of MAY_IMPORT"
                if target != source:
                    yield source, target, found


def test_workflow_code_imports_only_the_stdlib_temporalio_pydantic_and_the_contracts() -> None:
    offending = [
        str(found)
        for path in product_files("workflows")
        for found in imports_of(path)
        if found.module.split(".")[0] not in sys.stdlib_module_names
        and not any(
            found.module == ok or found.module.startswith(ok + ".") for ok in WORKFLOW_IMPORTS
        )
    ]
    assert not offending, (
        "workflow code replays, so it may import only the standard library, "
        f"{', '.join(WORKFLOW_IMPORTS)}:\n" + "\n".join(offending)
    )


def test_every_product_package_has_a_place_in_the_layers() -> None:
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} - NOT_PRODUCT
    core = {module_name(p.parent) for p in ROOT.glob("core/*/__init__.py")}
    missing = (packages | core) - set(MAY_IMPORT)
    assert not missing, f"add {sorted(missing)} to MAY_IMPORT: which packages may they import?"


def test_the_layers_themselves_have_no_cycle() -> None:
    cycle = find_cycle({unit: sorted(allowed) for unit, allowed in MAY_IMPORT.items()})
    assert cycle is None, f"MAY_IMPORT allows a cycle: {' -> '.join(cycle or [])}"


def test_no_package_imports_one_above_it() -> None:
    upward = [
        f"{found}: {source} may import only {', '.join(sorted(MAY_IMPORT[source])) or 'itself'}"
        for source, target, found in product_imports()
        if target not in MAY_IMPORT[source]
    ]
    assert not upward, "imports against the layering (tests/test_layering.py):\n" + "\n".join(
        upward
    )


def test_no_import_cycle_between_packages() -> None:
    edges: dict[str, dict[str, Import]] = {unit: {} for unit in MAY_IMPORT}
    for source, target, found in product_imports():
        edges[source].setdefault(target, found)
    cycle = find_cycle({unit: sorted(targets) for unit, targets in edges.items()})
    assert cycle is None, (
        "import cycle between packages: "
        + " -> ".join(cycle or [])
        + "\n"
        + (
            "\n".join(
                str(edges[a][b]) for a, b in zip(cycle or [], (cycle or [])[1:], strict=False)
            )
        )
    )
