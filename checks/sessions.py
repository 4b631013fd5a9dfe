"""The sandbox session of one check run, opened only when generated code has to run.

Most check runs need none: the static checkers run outside the sandbox, and tests whose
results an earlier check of the same files stored are not run again. The first unit that
must run code opens the session and checks every file out into its workspace, once; a
sandbox that does not work here is a note on the report, and nothing runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import Protocol

from checks.sandbox import SandboxSession, SandboxUnavailable
from core.contracts import ChecksReport


class Sessions(Protocol):
    async def get(self) -> SandboxSession | None:
        """The session with the run's files checked out; None when no sandbox works here."""
        ...


class Ready:
    """A session someone else opened and filled."""

    def __init__(self, session: SandboxSession | None) -> None:
        self._session = session

    async def get(self) -> SandboxSession | None:
        return self._session


def as_sessions(session: SandboxSession | Sessions | None) -> Sessions:
    return Ready(session) if session is None or isinstance(session, SandboxSession) else session


OpenSandbox = Callable[[], AbstractContextManager[SandboxSession]]
"""Opens a new sandbox session; raises `SandboxUnavailable` where none works."""


class LazySession:
    """Opens `open_session()` on first use and checks out `files` (by safe path) in it.

    Without `open_session`, nothing is opened and no code runs. Use it as a context
    manager: the session, if one was opened, is closed on exit.
    """

    def __init__(
        self,
        open_session: OpenSandbox | None,
        files: Mapping[str, str],
        report: ChecksReport,
    ) -> None:
        self._open = open_session
        self._files = files
        self._report = report
        self._stack = contextlib.ExitStack()
        self._lock = asyncio.Lock()
        self._tried = False
        self._session: SandboxSession | None = None

    async def get(self) -> SandboxSession | None:
        async with self._lock:
            if not self._tried:
                self._tried = True
                self._session = await asyncio.to_thread(self._start)
            return self._session

    def _start(self) -> SandboxSession | None:
        if self._open is None:
            return None
        try:
            session = self._stack.enter_context(self._open())
        except SandboxUnavailable as exc:
            self._report.notes.append(
                f"no usable sandbox on this worker: generated code not run ({exc})"
            )
            return None
        write_tree(session.workspace, self._files, self._report)
        return session

    def __enter__(self) -> LazySession:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stack.close()


def write_tree(root: Path, files: Mapping[str, str], report: ChecksReport) -> None:
    """Write the files (by paths known to stay inside `root`); a failure is a note."""
    for name, content in files.items():
        target = root / PurePosixPath(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content, encoding="utf-8")
        except OSError as exc:
            report.notes.append(f"could not check out {name!r} ({exc.strerror}): not checked")
