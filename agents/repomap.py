"""The repository map: what an agent gets of a large codebase instead of its whole files.

`build_outline` reads every file once (per snapshot: `outline_json` is what gets stored):
its path, language and line count, and for source files the classes and functions with
their signatures and the modules they import. `render_map` turns the outline into text for
one task: the file tree, then the outlines of the files most relevant to the task, as many
as the token budget holds. The agent reads whole files on demand with the editor tool.
No I/O here: the caller brings the files and takes the text.
"""

from __future__ import annotations

from collections.abc import Mapping

from agents.editor import EDIT_TOOL
from agents.repomap_models import FileOutline, RepoOutline, Symbol, language_of
from agents.repomap_parse import outline_source
from agents.repomap_rank import rank_files, words
from agents.repomap_tree import cut_lines, folded_tree_size, tree_text

__all__ = [
    "MAP_HEADING",
    "FileOutline",
    "RepoOutline",
    "Symbol",
    "build_outline",
    "outline_json",
    "render_map",
    "words",
]

MAP_HEADING = "# Repository map"
"""The map's first line: the offline model finds the map by it."""
READ_NOTE = (
    f"Read any file on demand with the `view` command of the editor tool ({EDIT_TOOL}); "
    "outlines are ranked by relevance to your task."
)
TREE_SHARE = 0.4
"""Of the budget after the heading, what the file tree may take when the outlines need the
rest: paths say where things are, outlines say what they are."""


def build_outline(files: Mapping[str, str]) -> RepoOutline:
    """Every file by path; symbols and imports for the languages the map parses."""
    outlines = []
    for path in sorted(files):
        text = files[path]
        language = language_of(path)
        symbols, imports = outline_source(path, language, text)
        outlines.append(
            FileOutline(
                path=path,
                language=language,
                lines=len(text.splitlines()),
                symbols=symbols,
                imports=imports,
            )
        )
    return RepoOutline(files=outlines)


def outline_json(files: Mapping[str, str]) -> str:
    """The outline as stored once per repository snapshot (`RepoOutline.model_validate_json`
    reads it back)."""
    return build_outline(files).model_dump_json()


def render_map(
    outline: RepoOutline, query: str, budget_tokens: int, *, chars_per_token: float = 4.0
) -> str:
    """The map for a task (`query`: the goal and the task's description), at most
    `budget_tokens * chars_per_token` characters."""
    limit = int(budget_tokens * chars_per_token)
    head = f"{MAP_HEADING}\n{READ_NOTE}\n"
    if len(head) > limit:
        return head[:limit]
    ranked = rank_files(outline, query)
    blocks = [_file_block(f) for f, _ in ranked if f.symbols]
    paths = [f.path for f in outline.files]
    room = limit - len(head)
    # The tree may take its share, what the outlines leave, and at least its most folded form.
    tree_room = max(
        int(room * TREE_SHARE),
        room - sum(len(b) for b in blocks) - 80,
        min(room, folded_tree_size(paths)),
    )
    tree = tree_text(paths, {f.path: score for f, score in ranked}, tree_room)
    return head + tree + _outlines_text(blocks, room - len(tree))


# The outlines ----------------------------------------------------------------------------


def _symbol_lines(symbol: Symbol, depth: int) -> list[str]:
    decorators = "".join(f"@{d} " for d in symbol.decorators)
    doc = f" {symbol.doc}" if symbol.doc else ""
    line = f"{'  ' * depth}{decorators}{symbol.signature}  # L{symbol.line}{doc}"
    return [line] + [m for member in symbol.members for m in _symbol_lines(member, depth + 1)]


def _file_block(f: FileOutline) -> str:
    lines = [f"### {f.path} ({f.language}, {f.lines} lines)"]
    lines += [line for symbol in f.symbols for line in _symbol_lines(symbol, 0)]
    return "".join(f"{line}\n" for line in lines)


def _outlines_text(blocks: list[str], room: int) -> str:
    """Whole blocks, most relevant first, while they fit; the first that does not is cut."""
    heading = "\n## Outlines, most relevant first\n"
    if not blocks or len(heading) > room:
        return ""
    text = heading
    for shown, block in enumerate(blocks):
        rest = len(blocks) - shown - 1
        note = f"({rest} more outlined files not shown: view them)\n" if rest else ""
        if len(text) + len(block) + len(note) <= room:
            text += block
            continue
        lines = block.splitlines()
        cut = cut_lines(lines[0] + "\n", lines[1:], room - len(text) - len(note), "symbols")
        missing = f"({rest + 1} more outlined files not shown: view them)\n"
        if cut.count("\n") > 2:  # the file's heading and one symbol at least
            return text + cut + note
        if len(text) + len(missing) <= room:
            return text + missing
        return text if shown else ""
    return text
