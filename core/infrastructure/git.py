"""The `git` command line, run without anything a repository's own config could execute.

A repository's `.git/config` can name programs git runs (hooks, `core.fsmonitor`,
`core.sshCommand`, filters, diff drivers). Every call here turns those off and ignores the
user's and the system's config, so reading a repository never runs code it names; the
identity and dates of commits are passed in, never taken from the machine.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path

GIT_TIMEOUT_SECONDS = 120.0

_SAFE_CONFIG = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.sshCommand=false",
    "core.askPass=",
    "credential.helper=",
    "protocol.ext.allow=never",
    "core.symlinks=true",
    "core.autocrlf=false",
    "core.quotePath=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "init.defaultBranch=main",
    "advice.detachedHead=false",
    "safe.directory=*",
)


class GitError(RuntimeError):
    """A git command failed; the message is its first line of error output."""


def git_available() -> bool:
    return shutil.which("git") is not None


def git_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """PATH and the locale only: no user or system config, no prompts, no pager."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_PAGER": "cat",
        "HOME": os.devnull,
    }
    return env | dict(extra or {})


async def git(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
    timeout: float = GIT_TIMEOUT_SECONDS,
) -> bytes:
    """Run `git args` and return its standard output; raises `GitError` on a non-zero exit."""
    command = ["git"]
    for setting in _SAFE_CONFIG:
        command += ["-c", setting]
    if git_dir is not None:
        command.append(f"--git-dir={git_dir}")
    command += list(args)
    process = await asyncio.create_subprocess_exec(
        *command,
        cwd=cwd,
        env=git_environment(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(stdin), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise GitError(f"git {args[0]} took longer than {timeout:.0f}s") from None
    if process.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        first = next(
            (line for line in lines if line.startswith("fatal:")), lines[0] if lines else ""
        )
        raise GitError(f"git {args[0]} failed: {first.removeprefix('fatal: ') or 'no output'}")
    return out


async def git_text(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    git_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: bytes | None = None,
) -> str:
    """`git` with its output decoded and stripped."""
    out = await git(args, cwd=cwd, git_dir=git_dir, env=env, stdin=stdin)
    return out.decode("utf-8", "replace").strip()
