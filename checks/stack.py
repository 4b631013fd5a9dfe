"""The sandbox's stack: what generated code can import where it runs, and what it cannot.

The sandbox runs generated code with this process's interpreter (`sys.executable`) and no
network, so nothing can be installed there: the stack is the standard library plus the
distributions in the interpreter's site-packages, read with `importlib.metadata` (never
written by hand), and no npm packages. Said once per process, on the checks worker the
truth about its sandbox.
"""

from __future__ import annotations

import importlib.metadata
import platform
import sys
import sysconfig
from dataclasses import dataclass
from functools import cache

from checks.requirements import Declared, Ecosystem, declared_requirements, normalize_name


@dataclass(frozen=True)
class SandboxStack:
    python: str
    """The interpreter's version, e.g. "3.11.7"."""
    packages: dict[str, str]
    """Normalized distribution name -> installed version, sorted by name."""


@dataclass(frozen=True)
class Unavailable:
    """A declared requirement the sandbox cannot satisfy."""

    line: int | None
    requirement: str
    """As written in the dependency file."""
    name: str
    """Normalized."""
    installed: str | None
    """The version the sandbox has, when it has the package but not a version that fits."""
    ecosystem: Ecosystem


@cache
def sandbox_stack() -> SandboxStack:
    """This interpreter's site-packages without the product itself (it is not for generated
    code), as a fresh `sys.executable` in the sandbox sees them: not this process's extra
    import paths (PYTHONPATH, the working directory)."""
    paths = list(dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib")))
    packages: dict[str, str] = {}
    for distribution in importlib.metadata.distributions(path=paths):
        name = normalize_name(distribution.metadata["Name"] or "")
        # Where a distribution is found twice, the first one on the path is what imports.
        if name and not _is_product(distribution):
            packages.setdefault(name, distribution.version)
    return SandboxStack(python=platform.python_version(), packages=dict(sorted(packages.items())))


def _is_product(distribution: importlib.metadata.Distribution) -> bool:
    """Whether the distribution installs this package (its setuptools `top_level.txt` names
    it; `packages_distributions()` would say the same after reading every file list, 0.5 s)."""
    top_level = distribution.read_text("top_level.txt") or ""
    return __name__.split(".")[0] in top_level.split()


def unavailable_requirements(
    path: str, content: str, stack: SandboxStack | None = None
) -> list[Unavailable]:
    """The requirements of a dependency file (by its path) that the sandbox cannot satisfy.

    Standard-library modules listed as requirements are no dependencies; a requirement whose
    environment marker excludes the sandbox's interpreter does not apply there.
    """
    stack = stack or sandbox_stack()
    missing = []
    for requirement in declared_requirements(path, content):
        name = normalize_name(requirement.name)
        installed = stack.packages.get(name)
        if requirement.ecosystem == Ecosystem.PYTHON and (
            _is_standard_library(requirement.name)
            or not _applies(requirement.marker)
            or (installed is not None and _satisfies(installed, requirement.spec))
        ):
            continue
        missing.append(_unavailable(requirement, name, installed))
    return missing


def _unavailable(requirement: Declared, name: str, installed: str | None) -> Unavailable:
    # The Python stack says nothing about an npm package of the same name.
    python = requirement.ecosystem == Ecosystem.PYTHON
    return Unavailable(
        line=requirement.line,
        requirement=requirement.text,
        name=name,
        installed=installed if python else None,
        ecosystem=requirement.ecosystem,
    )


def _is_standard_library(name: str) -> bool:
    return name.lower().replace("-", "_") in sys.stdlib_module_names


def _satisfies(version: str, spec: str) -> bool:
    """Whether `version` meets `spec`; without `packaging` installed, any version does."""
    if not spec:
        return True
    try:
        from packaging.specifiers import InvalidSpecifier, SpecifierSet
        from packaging.version import InvalidVersion
    except ImportError:
        return True
    try:
        return SpecifierSet(spec).contains(version, prereleases=True)
    except (InvalidSpecifier, InvalidVersion):
        # A specifier pip would refuse is the pin rules' business, not a missing package.
        return True


def _applies(marker: str) -> bool:
    """Whether an environment marker holds for the sandbox's interpreter (this one)."""
    if not marker:
        return True
    try:
        from packaging.markers import Marker
    except ImportError:
        return True
    try:
        return Marker(marker).evaluate()
    except ValueError:  # an invalid marker, or one naming an unknown variable
        return True
