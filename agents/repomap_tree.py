"""The file tree of the repository map, folded to fit its room.

Every path is there or counted: when the whole tree is too long, folders are folded into
one line each (`tests/ (14 files)`), the least relevant to the task first (a folder is as
relevant as its best file), the deepest and then the largest first among equals, so the
folders the task is about stay open the longest.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

INDENT = "  "


@dataclass
class _Folder:
    key: str
    depth: int
    parent: _Folder | None
    folders: dict[str, _Folder] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)
    count: int = 0
    best: float = 0.0
    under: int = 0
    """Characters of the lines under the folder as currently rendered."""


def tree_text(paths: list[str], scores: Mapping[str, float], room: int) -> str:
    """`## Files (N)` and the tree, folded until it fits `room` characters, else cut."""
    heading = f"\n## Files ({len(paths)})\n"
    root = _folder_of(paths, scores)
    folders = sorted(_walk(root), key=lambda f: (f.best, -f.depth, -f.count, f.key))
    total = len(heading) + root.under
    folded: set[str] = set()
    for folder in folders:
        if total <= room:
            break
        if not _inside(folder, folded) and _saving(folder) > 0:
            folded.add(folder.key)
            total -= _fold(folder)
    lines = _lines(root, folded)
    if total <= room:
        return heading + "".join(f"{line}\n" for line in lines)
    return cut_lines(heading, lines, room, "entries")


def folded_tree_size(paths: list[str]) -> int:
    """The length of the tree with every top-level folder folded: the least it can take."""
    root = _folder_of(paths, {})
    lines = _lines(root, {folder.key for folder in root.folders.values()})
    return len(f"\n## Files ({len(paths)})\n") + sum(len(line) + 1 for line in lines)


def cut_lines(heading: str, lines: list[str], room: int, what: str) -> str:
    """The heading and as many lines as fit with a note of how many were left out; "" when
    not even the heading and the note fit."""
    text = heading
    for shown, line in enumerate(lines):
        note = f"… {len(lines) - shown} more {what}\n"
        if len(text) + len(line) + 1 + len(note) > room:
            return text + note if len(text) + len(note) <= room else ""
        text += f"{line}\n"
    return text


def _folder_of(paths: list[str], scores: Mapping[str, float]) -> _Folder:
    root = _Folder(key="", depth=-1, parent=None)
    for path in paths:
        *parents, name = path.split("/")
        folder = root
        for part in parents:
            if part not in folder.folders:
                key = f"{folder.key}{part}/"
                folder.folders[part] = _Folder(key=key, depth=folder.depth + 1, parent=folder)
            folder = folder.folders[part]
        folder.files.append(name)
        while folder.parent is not None:
            folder.count += 1
            folder.best = max(folder.best, scores.get(path, 0.0))
            folder = folder.parent
    _measure(root)
    return root


def _measure(folder: _Folder) -> None:
    indent = len(INDENT) * (folder.depth + 1)
    folder.under = sum(indent + len(name) + 1 for name in folder.files)
    for name, sub in folder.folders.items():
        _measure(sub)
        folder.under += indent + len(name) + 2 + sub.under  # "name/\n" and what is under it


def _walk(folder: _Folder) -> list[_Folder]:
    found = []
    for sub in folder.folders.values():
        found += [sub, *_walk(sub)]
    return found


def _inside(folder: _Folder, folded: set[str]) -> bool:
    parent = folder.parent
    while parent is not None:
        if parent.key in folded:
            return True
        parent = parent.parent
    return False


def _folded_suffix(count: int) -> str:
    return f" ({count} file{'s' if count != 1 else ''})"


def _saving(folder: _Folder) -> int:
    """The characters folding it saves: what is under it, less the count its line gains."""
    return folder.under - len(_folded_suffix(folder.count))


def _fold(folder: _Folder) -> int:
    saved = _saving(folder)
    folder.under = 0
    parent = folder.parent
    while parent is not None:
        parent.under -= saved
        parent = parent.parent
    return saved


def _lines(folder: _Folder, folded: set[str]) -> list[str]:
    """Folders first, then files, each sorted by name."""
    indent = INDENT * (folder.depth + 1)
    lines = []
    for name in sorted(folder.folders):
        sub = folder.folders[name]
        if sub.key in folded:
            lines.append(f"{indent}{name}/{_folded_suffix(sub.count)}")
        else:
            lines += [f"{indent}{name}/", *_lines(sub, folded)]
    return lines + [f"{indent}{name}" for name in sorted(folder.files)]
