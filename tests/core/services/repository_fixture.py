"""A user's repository made with the real `git`: a small Python package with its own tests,
two commits, a gitignored file, an untracked one, a binary, a link, a submodule entry,
an executable script, and uncommitted edits in the work tree and the index."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core.infrastructure.git import git, git_text

USER = {
    "GIT_AUTHOR_NAME": "Ada",
    "GIT_AUTHOR_EMAIL": "ada@example.com",
    "GIT_AUTHOR_DATE": "2025-03-01T09:00:00Z",
    "GIT_COMMITTER_NAME": "Ada",
    "GIT_COMMITTER_EMAIL": "ada@example.com",
    "GIT_COMMITTER_DATE": "2025-03-01T09:00:00Z",
}
CALC_V1 = '"""Arithmetic."""\n\n\ndef add(a, b):\n    return a + b\n'
CALC_V2 = CALC_V1 + "\n\ndef subtract(a, b):\n    return a - b\n"
TEST_CALC = "from calc.core import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
PYPROJECT = '[project]\nname = "calc"\n\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
LOGO = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256))
SCRIPT = "#!/bin/sh\necho hello\n"
SUBMODULE_COMMIT = "1" * 40

FIRST_FILES = {".gitignore", "calc/__init__.py", "calc/core.py", "pyproject.toml"}
FIRST_FILES |= {"tests/test_core.py"}
SECOND_FILES = FIRST_FILES | {"logo.png", "core_link.py", "run.sh", "vendor/lib"}


@dataclass
class UserRepo:
    path: Path
    first: str
    second: str

    async def state(self) -> tuple[str, str, bytes, str]:
        """What the user has: status, HEAD, the edited file's bytes, every ref."""
        return (
            await git_text(["status", "--porcelain", "--untracked-files=all"], cwd=self.path),
            await git_text(["rev-parse", "HEAD"], cwd=self.path),
            (self.path / "calc" / "core.py").read_bytes(),
            await git_text(["for-each-ref"], cwd=self.path),
        )


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            path.write_bytes(content)


async def make_user_repo(root: Path) -> UserRepo:
    root.mkdir(parents=True)
    await git(["init", "--quiet", "--initial-branch=main"], cwd=root)
    write(
        root,
        {
            "calc/__init__.py": "",
            "calc/core.py": CALC_V1,
            "tests/test_core.py": TEST_CALC,
            "pyproject.toml": PYPROJECT,
            ".gitignore": "secret.env\nbuild/\n",
            "secret.env": "TOKEN=hunter2\n",
            "build/out.txt": "generated\n",
        },
    )
    await git(["add", "--all"], cwd=root)
    await git(["commit", "--quiet", "-m", "First"], cwd=root, env=USER)
    first = await git_text(["rev-parse", "HEAD"], cwd=root)
    write(root, {"calc/core.py": CALC_V2, "logo.png": LOGO, "run.sh": SCRIPT})
    (root / "run.sh").chmod(0o755)
    (root / "core_link.py").symlink_to("calc/core.py")
    await git(["add", "--all"], cwd=root)
    # A submodule's entry, added with plumbing: its commit is not in this repository.
    await git(
        ["update-index", "--add", "--cacheinfo", f"160000,{SUBMODULE_COMMIT},vendor/lib"],
        cwd=root,
    )
    await git(["commit", "--quiet", "-m", "Second"], cwd=root, env=USER)
    second = await git_text(["rev-parse", "HEAD"], cwd=root)
    # The user's own unfinished work: a staged edit, an unstaged one, an untracked file.
    write(root, {"pyproject.toml": PYPROJECT + "# staged\n"})
    await git(["add", "pyproject.toml"], cwd=root)
    write(root, {"calc/core.py": CALC_V2 + "# editing\n", "notes.txt": "todo\n"})
    return UserRepo(root, first, second)
