"""Symbols and imports of one source file: Python through `ast`, JavaScript and TypeScript
through tree-sitter's grammars.

A file that does not parse yields nothing rather than an error: the map still lists it and
the agent can view it.
"""

from __future__ import annotations

import ast
import posixpath
import re
import warnings

import tree_sitter_javascript
import tree_sitter_typescript
from tree_sitter import Language, Node, Parser

from agents.repomap_models import Symbol, python_module

Outline = tuple[list[Symbol], list[str]]
"""A file's symbols and the module names it imports."""

TREE_SITTER_LANGUAGES = {
    "javascript": Language(tree_sitter_javascript.language()),
    "typescript": Language(tree_sitter_typescript.language_typescript()),
    "tsx": Language(tree_sitter_typescript.language_tsx()),
}
_CLASSES = {"class_declaration", "abstract_class_declaration", "class"}
_FUNCTIONS = {"function_declaration", "generator_function_declaration"}
_VARIABLES = {"lexical_declaration", "variable_declaration"}
_FUNCTION_VALUES = {"arrow_function", "function_expression", "function", "generator_function"}
_METHODS = {"method_definition", "abstract_method_signature"}
_JSDOC_LINE = re.compile(r"^\s*(?:/\*\*|\*/|\*)?\s*")


def outline_source(path: str, language: str, text: str) -> Outline:
    """Symbols and imports of a file in a language the map parses; nothing for others."""
    if language == "python":
        return python_outline(path, text)
    if language in TREE_SITTER_LANGUAGES:
        return script_outline(path, language, text)
    return [], []


# Python ----------------------------------------------------------------------------------


def python_outline(path: str, text: str) -> Outline:
    try:
        with warnings.catch_warnings():  # an invalid escape in the user's code is not ours to print
            warnings.simplefilter("ignore")
            tree = ast.parse(text, filename=path)
    except (SyntaxError, ValueError, RecursionError):  # ValueError: a NUL byte in the source
        return [], []
    symbols = [symbol for node in tree.body if (symbol := _python_symbol(node, False))]
    return symbols, _python_imports(tree, path)


def _python_symbol(node: ast.stmt, in_class: bool) -> Symbol | None:
    if isinstance(node, ast.ClassDef):
        arguments = [ast.unparse(b) for b in node.bases] + [ast.unparse(k) for k in node.keywords]
        members = [m for child in node.body if (m := _python_symbol(child, True))]
        signature = f"class {node.name}{_type_params(node)}"
        return Symbol(
            kind="class",
            name=node.name,
            signature=f"{signature}({', '.join(arguments)})" if arguments else signature,
            line=node.lineno,
            doc=_first_line(ast.get_docstring(node)),
            decorators=[ast.unparse(d) for d in node.decorator_list],
            members=members,
        )
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        keyword = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
        returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
        return Symbol(
            kind="method" if in_class else "function",
            name=node.name,
            signature=f"{keyword} {node.name}{_type_params(node)}({_arguments(node.args)}){returns}",
            line=node.lineno,
            doc=_first_line(ast.get_docstring(node)),
            decorators=[ast.unparse(d) for d in node.decorator_list],
        )
    return None


def _arguments(args: ast.arguments) -> str:
    """As `ast.unparse` writes them, but PEP 8's `done: bool = False` round annotated defaults."""
    positional = [*args.posonlyargs, *args.args]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    parts = [_argument(a, d) for a, d in zip(positional, [*defaults, *args.defaults], strict=True)]
    if args.posonlyargs:
        parts.insert(len(args.posonlyargs), "/")
    if args.vararg:
        parts.append("*" + _argument(args.vararg, None))
    elif args.kwonlyargs:
        parts.append("*")
    parts += [_argument(a, d) for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)]
    if args.kwarg:
        parts.append("**" + _argument(args.kwarg, None))
    return ", ".join(parts)


def _argument(arg: ast.arg, default: ast.expr | None) -> str:
    text = f"{arg.arg}: {ast.unparse(arg.annotation)}" if arg.annotation else arg.arg
    if default is None:
        return text
    return (
        f"{text} = {ast.unparse(default)}" if arg.annotation else f"{text}={ast.unparse(default)}"
    )


def _type_params(node: ast.AST) -> str:
    """PEP 695 type parameters (`def first[T](...)`) where the parser has them."""
    params: list[ast.AST] = getattr(node, "type_params", [])
    return f"[{', '.join(ast.unparse(p) for p in params)}]" if params else ""


def _first_line(doc: str | None) -> str:
    lines = (doc or "").strip().splitlines()
    return lines[0].strip() if lines else ""


def _python_imports(tree: ast.Module, path: str) -> list[str]:
    """Absolute module names, relative imports resolved against the file's package."""
    module = python_module(path)
    package = module.split(".") if path.endswith("__init__.py") else module.split(".")[:-1]
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: max(0, len(package) - node.level + 1)] if node.level else []
            if node.module:
                found.append(".".join([*base, node.module]))
            else:  # `from . import models`: each name is most likely a module of the package
                found += [".".join([*base, alias.name]) for alias in node.names]
    return list(dict.fromkeys(name for name in found if name))


# JavaScript and TypeScript ---------------------------------------------------------------


def script_outline(path: str, language: str, text: str) -> Outline:
    source = text.encode("utf-8", "replace")
    root = Parser(TREE_SITTER_LANGUAGES[language]).parse(source).root_node
    symbols: list[Symbol] = []
    for statement in root.named_children:
        declaration = statement.child_by_field_name("declaration") or statement
        found = _script_symbols(declaration, source, _jsdoc(statement))
        if declaration is not statement:  # `@Component() export class ...`: outside the class
            outer = _decorators(statement, source)
            found = [s.model_copy(update={"decorators": outer + s.decorators}) for s in found]
        symbols += found
    return symbols, _script_imports(root, source)


def _script_symbols(node: Node, source: bytes, doc: str) -> list[Symbol]:
    if node.type in _CLASSES:
        body = node.child_by_field_name("body")
        members = [
            method
            for child in (body.named_children if body else [])
            if (method := _script_method(child, source))
        ]
        return [_script_symbol("class", node, body, source, doc, members)]
    if node.type in _FUNCTIONS:
        return [_script_symbol("function", node, node.child_by_field_name("body"), source, doc)]
    if node.type not in _VARIABLES:
        return []
    keyword = source[node.start_byte : node.named_children[0].start_byte].decode().strip()
    symbols = []
    for declarator in node.named_children:
        value = declarator.child_by_field_name("value")
        if declarator.type == "variable_declarator" and value and value.type in _FUNCTION_VALUES:
            symbol = _script_symbol(
                "function", declarator, value.child_by_field_name("body"), source, doc
            )
            symbols.append(symbol.model_copy(update={"signature": f"{keyword} {symbol.signature}"}))
    return symbols


def _script_method(node: Node, source: bytes) -> Symbol | None:
    if node.type not in _METHODS:
        return None
    return _script_symbol("method", node, node.child_by_field_name("body"), source, _jsdoc(node))


def _script_symbol(
    kind: str,
    node: Node,
    body: Node | None,
    source: bytes,
    doc: str,
    members: list[Symbol] | None = None,
) -> Symbol:
    """The declaration's text from its keyword (decorators left out) up to its body."""
    start = next((c for c in node.children if c.type not in ("decorator", "comment")), node)
    end = body.start_byte if body else node.end_byte
    name = node.child_by_field_name("name")
    return Symbol.model_validate(
        {
            "kind": kind,
            "name": name.text.decode() if name and name.text else "",
            "signature": " ".join(source[start.start_byte : end].decode().split()).rstrip(";"),
            "line": node.start_point.row + 1,
            "doc": doc,
            "decorators": _decorators(node, source),
            "members": members or [],
        }
    )


def _decorators(node: Node, source: bytes) -> list[str]:
    return [
        source[c.start_byte + 1 : c.end_byte].decode()
        for c in node.children
        if c.type == "decorator"
    ]


def _jsdoc(node: Node) -> str:
    """The first line of a `/** ... */` comment right above the node."""
    comment = node.prev_named_sibling
    if comment is None or comment.type != "comment" or not comment.text:
        return ""
    text = comment.text.decode()
    if not text.startswith("/**") or comment.end_point.row < node.start_point.row - 1:
        return ""
    lines = (_JSDOC_LINE.sub("", line).removesuffix("*/").strip() for line in text.splitlines())
    return next((line for line in lines if line), "")


def _script_imports(root: Node, source: bytes) -> list[str]:
    """Specifiers of `import ... from`, `export ... from` and `require(...)`."""
    found: list[str] = []
    stack = [root]
    while stack:
        node = stack.pop()
        specifier = None
        if node.type in ("import_statement", "export_statement"):
            specifier = node.child_by_field_name("source")
        elif node.type == "call_expression" and _is_require(node):
            arguments = node.child_by_field_name("arguments")
            specifier = arguments.named_children[0] if arguments else None
        if specifier is not None and specifier.type == "string":
            found.append(source[specifier.start_byte + 1 : specifier.end_byte - 1].decode())
        stack.extend(reversed(node.named_children))
    return list(dict.fromkeys(found))


def _is_require(node: Node) -> bool:
    function = node.child_by_field_name("function")
    return function is not None and function.type == "identifier" and function.text == b"require"


def resolve_script_import(path: str, specifier: str, paths: set[str]) -> str | None:
    """The file a relative specifier names (`./models` → `src/models.ts`), if it is here."""
    if not specifier.startswith("."):
        return None
    base = posixpath.normpath(posixpath.join(posixpath.dirname(path), specifier))
    suffixes = ("", ".ts", ".tsx", ".js", ".jsx", ".mjs", ".cjs")
    candidates = [base + s for s in suffixes] + [f"{base}/index{s}" for s in suffixes[1:]]
    return next((c for c in candidates if c in paths), None)
