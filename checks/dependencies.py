"""Dependencies (security_review): the pins of every requirements*.txt, and what the sandbox
cannot install.

A denied package (a known malicious typosquat) or a pin that allows only releases with a
known advisory is HIGH; installing from a URL or another index is MEDIUM; no pin is LOW. A
requirement of any dependency file (requirements*.txt, pyproject.toml, package.json) that the
sandbox lacks is HIGH: it has no network, so the code's tests would fail to import it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from checks.requirements import Ecosystem, normalize_name, parse_requirement, requirement_lines
from checks.stack import Unavailable, unavailable_requirements
from checks.workspace import REQUIREMENTS_FILE
from core.contracts import Finding, Severity

DENYLIST: dict[str, str] = {
    # Malicious typosquats removed from PyPI (SK-CSIRT advisory, 2017-09-09) ...
    "acqusition": "malicious typosquat of `acquisition` (SK-CSIRT, 2017)",
    "apidev-coop": "malicious typosquat of `apidev-coop_cms` (SK-CSIRT, 2017)",
    "bzip": "malicious typosquat of `bzip2` (SK-CSIRT, 2017)",
    "crypt": "malicious typosquat of `crypto` (SK-CSIRT, 2017)",
    "django-server": "malicious typosquat of `django-server-guardian-api` (SK-CSIRT, 2017)",
    "pwd": "malicious typosquat of `pwdhash` (SK-CSIRT, 2017)",
    "setup-tools": "malicious typosquat of `setuptools` (SK-CSIRT, 2017)",
    "telnet": "malicious typosquat of `telnetsrvlib` (SK-CSIRT, 2017)",
    "urlib3": "malicious typosquat of `urllib3` (SK-CSIRT, 2017)",
    "urllib": "malicious typosquat of `urllib3` (SK-CSIRT, 2017)",
    # ... and later ones.
    "colourama": "malicious typosquat of `colorama` (clipboard hijacker, 2018)",
    "python3-dateutil": "malicious typosquat of `python-dateutil` (stole SSH and GPG keys, 2019)",
    "jeilyfish": "malicious typosquat of `jellyfish` (stole SSH and GPG keys, 2019)",
}
"""Normalized distribution names that must never be installed, with the reason."""


@dataclass(frozen=True)
class Advisory:
    fixed_in: str
    """The first release without the vulnerability."""
    summary: str


ADVISORIES: dict[str, tuple[Advisory, ...]] = {
    "pyyaml": (
        Advisory("5.4", "CVE-2020-14343: arbitrary code execution through full_load/FullLoader"),
    ),
    "jinja2": (
        Advisory("2.11.3", "CVE-2020-28493: regular-expression denial of service in urlize"),
    ),
    "requests": (
        Advisory(
            "2.20.0", "CVE-2018-18074: Authorization header sent on after an https->http redirect"
        ),
    ),
    "urllib3": (
        Advisory("1.24.2", "CVE-2019-11324: improper certificate validation with custom CAs"),
    ),
    "flask": (Advisory("0.12.3", "CVE-2018-1000656: denial of service through crafted JSON"),),
}
"""Normalized name -> advisories; a requirement that allows only older releases is HIGH."""

SPECIFIER = re.compile(r"(?P<op>===|==|~=|!=|<=|>=|<|>)\s*(?P<version>[^\s,;]+)")
INDEX_OPTIONS = ("-i", "--index-url", "--extra-index-url", "-f", "--find-links")
EDITABLE_OPTIONS = ("-e", "--editable")


NOT_IN_SANDBOX = (
    "not installed in the sandbox (no network{has}): use one of the installed packages "
    "or the standard library"
)
"""What the agent and the gate are told; `has` says what the sandbox has instead, if anything."""


def dependency_findings(files: dict[str, str]) -> list[Finding]:
    findings = []
    for path, content in sorted(files.items()):
        if REQUIREMENTS_FILE.match(PurePosixPath(path).name):
            for number, line in requirement_lines(content):
                findings += _requirement_findings(path, number, line)
    return findings


def _requirement_findings(path: str, number: int, line: str) -> list[Finding]:
    def finding(severity: Severity, rule: str, message: str, fix: str | None = None) -> Finding:
        return Finding(
            source="dependencies",
            severity=severity,
            message=message,
            file=path,
            line=number,
            rule=rule,
            suggested_fix=fix,
        )

    from_url = finding(
        Severity.MEDIUM,
        "unpinned-source",
        f"`{line}` is installed from a URL or a checkout, not a pinned release",
        "Depend on a released version pinned with ==.",
    )
    if line.startswith("-"):
        option = line.split()[0].split("=")[0]
        if option in INDEX_OPTIONS:
            return [
                finding(
                    Severity.MEDIUM,
                    "custom-index",
                    f"`{line}` installs from another package index (dependency-confusion risk)",
                    "Install from PyPI or a vetted mirror configured outside the repository.",
                )
            ]
        return [from_url] if option in EDITABLE_OPTIONS and "://" in line else []
    match = parse_requirement(line)
    if match is None or match["url"] or "://" in line:
        return [from_url]
    name = normalize_name(match["name"])
    if name in DENYLIST:
        return [
            finding(
                Severity.HIGH,
                "denied-package",
                f"`{match['name']}` is on the deny list: {DENYLIST[name]}",
                "Remove it; depend on the package it imitates if that was meant.",
            )
        ]
    upper = upper_bound(match["spec"])
    if upper is None:
        return [
            finding(
                Severity.LOW,
                "not-pinned",
                f"`{match['name']}{match['spec']}` is not pinned: any future release gets installed",
                f"Pin it, e.g. `{match['name']}==<tested version>`.",
            )
        ]
    return [
        finding(
            Severity.HIGH,
            "vulnerable-pin",
            f"`{match['name']}{match['spec']}` allows only releases affected by {advisory.summary}",
            f"Require {match['name']}>={advisory.fixed_in}.",
        )
        for advisory in ADVISORIES.get(name, ())
        if _below(upper, release(advisory.fixed_in))
    ]


def sandbox_findings(files: dict[str, str]) -> list[Finding]:
    """A HIGH finding for each requirement of a dependency file that the sandbox lacks."""
    return [
        Finding(
            source="dependencies",
            severity=Severity.HIGH,
            message=f"`{missing.requirement}` is {_not_in_sandbox(missing)}",
            file=path,
            line=missing.line,
            rule="not-in-sandbox",
            suggested_fix="Depend on a package the handbook lists as installed, "
            "or on the standard library.",
        )
        for path, content in sorted(files.items())
        for missing in unavailable_requirements(path, content)
    ]


def sandbox_warning(path: str, content: str) -> str | None:
    """One line for the result of writing a dependency file that names what the sandbox
    lacks; None when the sandbox has all of it, or the file declares no dependencies."""
    missing = unavailable_requirements(path, content)
    if not missing:
        return None
    named = []
    for m in missing:
        details = "; ".join(d for d in (f"line {m.line}" if m.line else "", _instead(m)) if d)
        named.append(f"`{m.requirement}`" + (f" ({details})" if details else ""))
    return f"Warning: {path} requires {', '.join(named)}: {NOT_IN_SANDBOX.format(has='')}."


def _not_in_sandbox(missing: Unavailable) -> str:
    instead = _instead(missing)
    return NOT_IN_SANDBOX.format(has=f"; {instead}" if instead else "")


def _instead(missing: Unavailable) -> str:
    """What the sandbox has in place of a missing requirement, if anything is worth saying."""
    if missing.installed is not None:
        return f"it has {missing.name} {missing.installed}"
    if missing.ecosystem == Ecosystem.NPM:
        return "it has no npm packages"
    return ""


Release = tuple[int, ...]


@dataclass(frozen=True)
class UpperBound:
    release: Release
    inclusive: bool


def release(version: str) -> Release:
    """The numeric release of a version: "2.11.3rc1" -> (2, 11, 3)."""
    match = re.match(r"\d+(?:\.\d+)*", version.strip().lstrip("vV"))
    return tuple(int(p) for p in match[0].split(".")) if match else ()


def _padded(parts: Release) -> Release:
    """Comparable across lengths: (5, 4) and (5, 4, 0) are the same release."""
    return parts + (0,) * (8 - len(parts))


def _bump(parts: Release) -> Release:
    return (*parts[:-1], parts[-1] + 1) if parts else parts


def upper_bound(spec: str) -> UpperBound | None:
    """The highest release a specifier set allows, if it has a bound (==, <, <=, ~=)."""
    bounds = []
    for match in SPECIFIER.finditer(spec):
        op, version = match["op"], match["version"]
        parts = release(version)
        if not parts:
            continue
        if op in ("==", "===") and version.endswith(".*"):
            bounds.append(UpperBound(_bump(parts), inclusive=False))
        elif op in ("==", "==="):
            bounds.append(UpperBound(parts, inclusive=True))
        elif op == "<":
            bounds.append(UpperBound(parts, inclusive=False))
        elif op == "<=":
            bounds.append(UpperBound(parts, inclusive=True))
        elif op == "~=" and len(parts) >= 2:
            bounds.append(UpperBound(_bump(parts[:-1]), inclusive=False))
    if not bounds:
        return None
    # The tightest bound wins; at the same release "<" is tighter than "<=".
    return min(bounds, key=lambda b: (_padded(b.release), b.inclusive))


def _below(bound: UpperBound, fixed: Release) -> bool:
    """True when every release the bound allows is older than `fixed`."""
    limit, first_fixed = _padded(bound.release), _padded(fixed)
    return limit < first_fixed if bound.inclusive else limit <= first_fixed
