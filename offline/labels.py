"""The label line that starts every file the offline model writes, so nobody mistakes
template output for model output, and reading it back."""

from __future__ import annotations

import re


def label_line(path: str, author: str, model: str) -> str:
    """The first line of every offline file, in that file's comment syntax."""
    text = (
        f"Produced by {author} with the offline model ({model}): deterministic template "
        "output, no LLM was called. Cost: $0.00."
    )
    name = path.rsplit("/", 1)[-1].lower()
    if name.endswith((".md", ".markdown")):
        return f"> {text}"
    if name.endswith((".html", ".htm", ".xml", ".svg")):
        return f"<!-- {text} -->"
    if name.endswith(".css"):
        return f"/* {text} */"
    if name.endswith((".js", ".ts", ".jsx", ".tsx")):
        return f"// {text}"
    if name.endswith(".sql"):
        return f"-- {text}"
    return f"# {text}"  # Python, requirements.txt, .gitignore, YAML, shell, TOML


def labelled(path: str, content: str, author: str, model: str) -> str:
    separator = "\n\n" if path.endswith(".md") else "\n"
    return label_line(path, author, model) + separator + content


_LABEL_RE = re.compile(r"Produced by (.+?) with the offline model \(([^)]+)\)")


def strip_label(content: str) -> str:
    """Content without its offline label line, e.g. to embed one file in another."""
    first, _, rest = content.partition("\n")
    return rest.lstrip("\n") if _LABEL_RE.search(first) else content


def provenance(content: str) -> tuple[str, str]:
    """(agent, model) from a file's label line; real-model files carry none."""
    match = _LABEL_RE.search("\n".join(content.splitlines()[:3]))
    return (match.group(1), f"{match.group(2)} (offline)") if match else ("not labelled", "-")
