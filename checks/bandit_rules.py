"""bandit's tests, most of them run by ruff: which ruff rule stands for which bandit test.

ruff implements bandit's tests as its `S` rules, at native speed in one short process.
Findings keep bandit's identity: its test id as the rule (B602), its severity
and confidence, and ruff's message. Where bandit grades one test by what it found (a
literal shell command is LOW, a built one HIGH; a world-writable mode HIGH, a
group-executable one MEDIUM; an RSA key under 1024 bits HIGH, under 2048 MEDIUM; an
`extractall` without `members` HIGH), the same grading is read from ruff's message or
from the code it points at.

What ruff lacks or does only in part, measured against bandit on the same code:

- the import blacklist (B401-B415): ruff misses every dotted import (`import xmlrpc.client`,
  `import pyghmi.ipmi`, `import Crypto.Cipher.ARC4`) and runs these rules only in preview;
  checked here instead, in-process on the syntax tree, with a copy of bandit's table;
- B613 (bidirectional control characters): checked here, with bandit's characters;
- B304 (insecure ciphers): ruff misses `ARC4.new` of pycrypto/pycryptodome and the
  `CAST5`, `SEED` and `TripleDES` algorithms of `cryptography`;
- B301 (pickle): ruff misses `jsonpickle`;
- B308 (`mark_safe`): ruff skips a literal argument;
- B601 (paramiko): ruff misses `exec_command` on a client it cannot trace to paramiko;
- B614 (`torch.load`), B615 (Hugging Face downloads without a pinned revision) and B703
  (`mark_safe` on non-literals): no ruff rule.

All but the first two stay with bandit (`RESIDUAL`), run only on the files that name what the
test looks for; bandit then speaks for that test in that file. ruff also does not report
B603 for a literal argument list (`subprocess.run(["ls"])`) nor B311 for `random.sample`
and `random.getrandbits`: both LOW, so informational only.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from core.contracts import Finding, Severity


@dataclass(frozen=True)
class BanditTest:
    id: str
    name: str
    severity: Severity
    confidence: str


H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW


def _test(id_: str, name: str, severity: Severity, confidence: str = "high") -> BanditTest:
    return BanditTest(id_, name, severity, confidence)


RUFF_BANDIT: dict[str, BanditTest] = {
    "S101": _test("B101", "assert_used", L),
    "S102": _test("B102", "exec_used", M),
    "S103": _test("B103", "set_bad_file_permissions", H),
    "S104": _test("B104", "hardcoded_bind_all_interfaces", M, "medium"),
    "S105": _test("B105", "hardcoded_password_string", L, "medium"),
    "S106": _test("B106", "hardcoded_password_funcarg", L, "medium"),
    "S107": _test("B107", "hardcoded_password_default", L, "medium"),
    "S108": _test("B108", "hardcoded_tmp_directory", M, "medium"),
    "S110": _test("B110", "try_except_pass", L),
    "S112": _test("B112", "try_except_continue", L),
    "S113": _test("B113", "request_without_timeout", M, "low"),
    "S201": _test("B201", "flask_debug_true", H, "medium"),
    "S202": _test("B202", "tarfile_unsafe_members", H),
    "S301": _test("B301", "blacklist", M),
    "S302": _test("B302", "blacklist", M),
    "S303": _test("B303", "blacklist", M),
    "S305": _test("B305", "blacklist", M),
    "S306": _test("B306", "blacklist", M),
    "S307": _test("B307", "blacklist", M),
    "S308": _test("B308", "blacklist", M),
    "S310": _test("B310", "blacklist", M),
    "S311": _test("B311", "blacklist", L),
    "S312": _test("B312", "blacklist", H),
    "S313": _test("B313", "blacklist", M),
    "S314": _test("B314", "blacklist", M),
    "S315": _test("B315", "blacklist", M),
    "S316": _test("B316", "blacklist", M),
    "S317": _test("B317", "blacklist", M),
    "S318": _test("B318", "blacklist", M),
    "S319": _test("B319", "blacklist", M),
    "S321": _test("B321", "blacklist", H),
    "S323": _test("B323", "blacklist", M),
    "S324": _test("B324", "hashlib", H),
    "S501": _test("B501", "request_with_no_cert_validation", H),
    "S502": _test("B502", "ssl_with_bad_version", H),
    "S503": _test("B503", "ssl_with_bad_defaults", M, "medium"),
    "S504": _test("B504", "ssl_with_no_version", L, "medium"),
    "S505": _test("B505", "weak_cryptographic_key", M),
    "S506": _test("B506", "yaml_load", M),
    "S507": _test("B507", "ssh_no_host_key_verification", H, "medium"),
    "S508": _test("B508", "snmp_insecure_version_check", M),
    "S509": _test("B509", "snmp_crypto_check", M),
    "S601": _test("B601", "paramiko_calls", M, "medium"),
    "S602": _test("B602", "subprocess_popen_with_shell_equals_true", H),
    "S603": _test("B603", "subprocess_without_shell_equals_true", L),
    "S604": _test("B604", "any_other_function_with_shell_equals_true", M, "low"),
    "S605": _test("B605", "start_process_with_a_shell", H),
    "S606": _test("B606", "start_process_with_no_shell", L, "medium"),
    "S607": _test("B607", "start_process_with_partial_path", L),
    "S608": _test("B608", "hardcoded_sql_expressions", M, "low"),
    "S609": _test("B609", "linux_commands_wildcard_injection", H, "medium"),
    "S610": _test("B610", "django_extra_used", M, "medium"),
    "S611": _test("B611", "django_rawsql_used", M, "medium"),
    "S612": _test("B612", "logging_config_insecure_listen", M),
    "S701": _test("B701", "jinja2_autoescape_false", H),
    "S702": _test("B702", "use_of_mako_templates", M),
    "S704": _test("B704", "markupsafe_markup_xss", M),
}
"""ruff rule -> the bandit test it implements, with bandit's usual severity and confidence.

Only these rules are selected: a ruff release adding `S` rules changes nothing here."""

RUFF_SECURITY_RULES = tuple(sorted(RUFF_BANDIT))


@dataclass(frozen=True)
class Residual:
    """A bandit test that still runs in bandit, on files containing one of `triggers`.

    Each trigger is a name the test cannot fire without: it must be imported or called."""

    test: str
    triggers: tuple[str, ...]


RESIDUAL: tuple[Residual, ...] = (
    Residual("B301", ("jsonpickle",)),
    Residual("B304", ("Crypto", "cryptography")),  # Crypto also matches Cryptodome
    Residual("B308", ("mark_safe",)),
    Residual("B601", ("paramiko",)),
    Residual("B614", ("torch",)),
    Residual("B615", ("transformers", "datasets", "huggingface_hub")),
    Residual("B703", ("safestring",)),
)


def bandit_version() -> str | None:
    try:
        return version("bandit")
    except PackageNotFoundError:
        return None


def rules_fingerprint() -> str:
    """Everything here that decides a file's findings: part of the stored results' keys."""
    return repr((sorted(RUFF_BANDIT.items()), IMPORT_BLACKLIST, BIDI_CHARACTERS, RESIDUAL))


def residual_tests(source: str) -> tuple[str, ...]:
    """The bandit tests this file needs bandit for: those whose names it contains."""
    return tuple(r.test for r in RESIDUAL if any(t in source for t in r.triggers))


# --- ruff's S findings, graded as bandit grades them --------------------------------------

SEEMS_SAFE = "seems safe"
"""ruff's wording, like bandit's, for a shell call on a literal command (bandit: LOW)."""
OCTAL = re.compile(r"0o([0-7]+)")
NUMBER = re.compile(r"\d+")
KEY_SIZE_HIGH = {"RSA": 1024, "DSA": 1024, "EC": 160}
"""bandit's default `weak_key_size_*_high`: below it HIGH, else (below *_medium) MEDIUM."""


def ruff_bandit_finding(item: dict[str, Any], file: str, source: str) -> Finding | None:
    """A ruff `S` diagnostic as the bandit finding it stands for; None for other rules."""
    code = str(item.get("code") or "")
    test = RUFF_BANDIT.get(code)
    if test is None:
        return None
    message = str(item.get("message", ""))
    location = item.get("location")
    line = int(location["row"]) if isinstance(location, dict) else None
    call = _call(item, source) if code == "S202" else ""
    severity = _graded(code, message, _span(item, source), call) or test.severity
    url = item.get("url")
    return Finding(
        source="bandit",
        severity=severity,
        message=f"{message} ({test.name}, {test.confidence} confidence; ruff {code})",
        file=file,
        line=line,
        rule=test.id,
        suggested_fix=f"See {url}" if url else None,
    )


def _graded(code: str, message: str, span: str, call: str) -> Severity | None:
    """bandit's severity where it depends on what was found; None: the test's usual one."""
    if code in ("S602", "S605"):
        return L if SEEMS_SAFE in message.lower() else H
    if code == "S103":
        mask = OCTAL.search(message)
        return M if mask and not int(mask[1], 8) & 0o002 else H
    if code == "S324":
        return M if "`crypt`" in message else H
    if code == "S202":
        members = re.search(r"\bmembers\s*=\s*([\w.]+\s*\()?", call)
        if members is None:
            return H
        return L if members[1] else M
    if code == "S505":
        kind = "EC" if "curve" in message.lower() else message.split(" ", 1)[0]
        if kind not in KEY_SIZE_HIGH:
            kind = "RSA"
        sizes = [int(n) for n in NUMBER.findall(span)]
        return H if sizes and min(sizes) < KEY_SIZE_HIGH[kind] else M
    return None


def _span(item: dict[str, Any], source: str) -> str:
    """The source text a diagnostic points at (rows and columns are 1-based)."""
    start, end = item.get("location"), item.get("end_location")
    if not isinstance(start, dict) or not isinstance(end, dict):
        return ""
    lines = source.splitlines()[int(start["row"]) - 1 : int(end["row"])]
    if not lines:
        return ""
    lines[-1] = lines[-1][: int(end["column"]) - 1]
    lines[0] = lines[0][int(start["column"]) - 1 :]
    return "\n".join(lines)


def _call(item: dict[str, Any], source: str) -> str:
    """The call a diagnostic points at: from its start to the parenthesis that closes it."""
    start = item.get("location")
    if not isinstance(start, dict):
        return ""
    lines = source.splitlines(keepends=True)[int(start["row"]) - 1 :]
    text = "".join(lines)[int(start["column"]) - 1 :]
    depth = 0
    for index, char in enumerate(text):
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[: index + 1]
    return text


# --- in-process: the import blacklist and bidirectional characters -----------------------


@dataclass(frozen=True)
class ImportCheck:
    """One entry of bandit's import blacklist (`bandit.blacklists.imports`)."""

    id: str
    name: str
    severity: Severity
    qualnames: tuple[str, ...]
    message: str


_XML = (
    "Using {name} to parse untrusted XML data is known to be vulnerable to XML attacks. "
    "Replace {name} with the equivalent defusedxml package, or make sure "
    "defusedxml.defuse_stdlib() is called."
)
_CONSIDER = "Consider possible security implications associated with {name} module."

IMPORT_BLACKLIST: tuple[ImportCheck, ...] = (
    ImportCheck(
        "B401",
        "import_telnetlib",
        H,
        ("telnetlib",),
        "A telnet-related module is being imported.  Telnet is considered insecure. Use SSH "
        "or some other encrypted protocol.",
    ),
    ImportCheck(
        "B402",
        "import_ftplib",
        H,
        ("ftplib",),
        "A FTP-related module is being imported.  FTP is considered insecure. Use SSH/SFTP/SCP "
        "or some other encrypted protocol.",
    ),
    ImportCheck("B403", "import_pickle", L, ("pickle", "cPickle", "dill", "shelve"), _CONSIDER),
    ImportCheck(
        "B404",
        "import_subprocess",
        L,
        ("subprocess",),
        "Consider possible security implications associated with the subprocess module.",
    ),
    ImportCheck(
        "B405", "import_xml_etree", L, ("xml.etree.cElementTree", "xml.etree.ElementTree"), _XML
    ),
    ImportCheck("B406", "import_xml_sax", L, ("xml.sax",), _XML),
    ImportCheck("B407", "import_xml_expat", L, ("xml.dom.expatbuilder",), _XML),
    ImportCheck("B408", "import_xml_minidom", L, ("xml.dom.minidom",), _XML),
    ImportCheck("B409", "import_xml_pulldom", L, ("xml.dom.pulldom",), _XML),
    ImportCheck(
        "B411",
        "import_xmlrpclib",
        H,
        ("xmlrpc",),
        "Using {name} to parse untrusted XML data is known to be vulnerable to XML attacks. "
        "Use defusedxml.xmlrpc.monkey_patch() function to monkey-patch xmlrpclib and "
        "mitigate XML vulnerabilities.",
    ),
    ImportCheck(
        "B412",
        "import_httpoxy",
        H,
        (
            "wsgiref.handlers.CGIHandler",
            "twisted.web.twcgi.CGIScript",
            "twisted.web.twcgi.CGIDirectory",
        ),
        _CONSIDER,
    ),
    ImportCheck(
        "B413",
        "import_pycrypto",
        H,
        tuple(
            f"Crypto.{m}"
            for m in (
                "Cipher",
                "Hash",
                "IO",
                "Protocol",
                "PublicKey",
                "Random",
                "Signature",
                "Util",
            )
        ),
        "The pyCrypto library and its module {name} are no longer actively maintained and "
        "have been deprecated. Consider using pyca/cryptography library.",
    ),
    ImportCheck(
        "B415",
        "import_pyghmi",
        H,
        ("pyghmi",),
        "An IPMI-related module is being imported. IPMI is considered insecure. Use an "
        "encrypted protocol.",
    ),
)
"""bandit 1.9's import blacklist, in its order (the first match is the one reported); a
test compares it with the installed bandit's, so an upgrade that changes it is noticed."""

BIDI_CHARACTERS = (
    "\u202a", "\u202b", "\u202c", "\u202d", "\u202e",
    "\u2066", "\u2067", "\u2068", "\u2069", "\u200f",
)  # fmt: skip
"""bandit's B613 (trojansource) characters."""

BANDIT_DOCS = "https://bandit.readthedocs.io/en/latest/blacklists/blacklist_imports.html"
IMPORT_ROOTS = tuple(sorted({qn.split(".")[0] for c in IMPORT_BLACKLIST for qn in c.qualnames}))
"""Every blacklisted import names one of these: a file without any is not parsed."""


def inline_findings(file: str, source: str) -> list[Finding] | None:
    """B401-B415 and B613 in one file, as bandit finds them; None if it does not parse
    (ruff's syntax errors say so as well: a file naming no blacklisted module is not
    parsed here)."""
    findings = []
    for number, line in enumerate(source.splitlines(), start=1):
        char = next((c for c in BIDI_CHARACTERS if c in line), None)
        if char is not None:
            findings.append(_trojan(file, number, char))
            break
    if not any(root in source for root in IMPORT_ROOTS):
        return findings
    try:
        tree = ast.parse(source, filename=file)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    # Imports are statements: only `__import__`/`import_module` calls need every node.
    calls = "__import__" in source or "import_module" in source
    for node in ast.walk(tree) if calls else _statements(tree.body):
        for check, name in _blacklisted(node):
            findings.append(
                Finding(
                    source="bandit",
                    severity=check.severity,
                    message=f"{check.message.replace('{name}', name)} (blacklist, high confidence)",
                    file=file,
                    line=getattr(node, "lineno", None),
                    rule=check.id,
                    suggested_fix=(
                        f"See {BANDIT_DOCS}#{check.id.lower()}-{check.name.replace('_', '-')}"
                    ),
                )
            )
    return findings


def _statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement, however deeply nested in other statements, without expressions."""
    for node in body:
        yield node
        for field in ("body", "orelse", "finalbody"):
            inner = getattr(node, field, None)
            if isinstance(inner, list):
                yield from _statements(inner)
        for part in [*getattr(node, "handlers", ()), *getattr(node, "cases", ())]:
            yield from _statements(part.body)


def _blacklisted(node: ast.AST) -> Iterable[tuple[ImportCheck, str]]:
    """bandit's blacklist match for one node: the first check any imported name starts with
    (one finding per statement), or an `__import__`/`import_module` of a listed module."""
    if isinstance(node, ast.Import | ast.ImportFrom):
        prefix = f"{node.module}." if isinstance(node, ast.ImportFrom) and node.module else ""
        for check in IMPORT_BLACKLIST:
            for alias in node.names:
                if any((prefix + alias.name).startswith(qn) for qn in check.qualnames):
                    return [(check, alias.name)]
        return []
    if isinstance(node, ast.Call) and node.args and _imports_by_name(node.func):
        first = node.args[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            for check in IMPORT_BLACKLIST:
                if first.value in check.qualnames:
                    return [(check, first.value)]
    return []


def _imports_by_name(func: ast.expr) -> bool:
    if isinstance(func, ast.Name):
        return func.id in ("__import__", "import_module")
    return (
        isinstance(func, ast.Attribute)
        and func.attr in ("import_module", "__import__")
        and isinstance(func.value, ast.Name)
        and func.value.id == "importlib"
    )


def _trojan(file: str, line: int, char: str) -> Finding:
    return Finding(
        source="bandit",
        severity=Severity.HIGH,
        message=(
            "A Python source file contains bidirectional control characters "
            f"({char!r}). (trojansource, medium confidence)"
        ),
        file=file,
        line=line,
        rule="B613",
    )
