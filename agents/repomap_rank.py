"""Which files of a repository matter for a task: word overlap plus how much others use them.

A file scores for each query word found in its path, its symbol names or its docstrings,
weighted by where (a path says most about what a file is for) and by how rare the word is
in the repository (a word every file has tells nothing). Files many others import get a
smaller bonus: they are what a change most likely has to respect. Every step is a pure
function of the outline and the query, so the same task gets the same map.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import PurePosixPath

from agents.repomap_models import FileOutline, RepoOutline, Symbol, python_module
from agents.repomap_parse import resolve_script_import

PATH_WEIGHT = 3.0
NAME_WEIGHT = 2.0
DOC_WEIGHT = 1.0
IMPORT_BONUS = 0.9
"""At most this for the most imported file: a single doc-word match (weight 1 at least)
outranks it."""

_STOP_TEXT = """a an and are as at be been by can do does for from has have how i if in into is it its
    me my no not of on or our should so such that the their them then there these they this
    those to up use using via was we were when which will with you your add make new change
    update implement support please get set self cls py init args kwargs"""
STOP_WORDS = frozenset(_STOP_TEXT.split())
_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def words(text: str) -> list[str]:
    """Identifier words: snake_case and CamelCase split, lower-cased, stemmed, stop words out."""
    found = (raw.lower() for raw in _WORD.findall(text))
    return [_stem(w) for w in found if len(w) > 1 and not w.isdigit() and w not in STOP_WORDS]


def _stem(word: str) -> str:
    """A crude suffix strip so `routes`/`route` and `limiting`/`limit` meet."""
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    for suffix, shortest in (("ing", 6), ("ed", 5)):
        if word.endswith(suffix) and len(word) >= shortest:
            return word[: -len(suffix)]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _symbols(symbols: Iterable[Symbol]) -> Iterator[Symbol]:
    for symbol in symbols:
        yield symbol
        yield from _symbols(symbol.members)


def _fields(outline: FileOutline) -> tuple[set[str], set[str], set[str]]:
    """The words of a file's path (suffix dropped), of its symbol names, of its docstrings."""
    symbols = list(_symbols(outline.symbols))
    return (
        set(words(str(PurePosixPath(outline.path).with_suffix("")))),
        {w for s in symbols for w in words(s.name)},
        {w for s in symbols for w in words(s.doc)},
    )


def import_counts(outline: RepoOutline) -> Counter[str]:
    """How many other files of the repository import each file."""
    paths = {f.path for f in outline.files}
    modules = {python_module(f.path): f.path for f in outline.files if f.language == "python"}
    counts: Counter[str] = Counter()
    for f in outline.files:
        targets = {_resolve(f, name, modules, paths) for name in f.imports} - {None, f.path}
        counts.update(t for t in targets if t)
    return counts


def _resolve(f: FileOutline, name: str, modules: dict[str, str], paths: set[str]) -> str | None:
    if f.language != "python":
        return resolve_script_import(f.path, name, paths)
    parts = name.split(".")
    # `from app.auth import routes` records `app.auth`: the longest known prefix is the file.
    for end in range(len(parts), 0, -1):
        if (found := modules.get(".".join(parts[:end]))) is not None:
            return found
    return None


def rank_files(outline: RepoOutline, query: str) -> list[tuple[FileOutline, float]]:
    """Every file with its score, highest first, ties by path."""
    terms = sorted(set(words(query)))
    fields = {f.path: _fields(f) for f in outline.files}
    frequency = Counter(
        w for path_words, names, docs in fields.values() for w in path_words | names | docs
    )
    total = len(outline.files)
    imported = import_counts(outline)
    most = max(imported.values(), default=0)
    scored = []
    for f in outline.files:
        path_words, names, docs = fields[f.path]
        score = 0.0
        for t in terms:
            where = PATH_WEIGHT * (t in path_words) + NAME_WEIGHT * (t in names)
            where += DOC_WEIGHT * (t in docs)
            score += where * (1.0 + math.log((total + 1) / (frequency[t] + 1)))
        if most:
            score += IMPORT_BONUS * imported[f.path] / most
        scored.append((f, score))
    return sorted(scored, key=lambda pair: (-pair[1], pair[0].path))
