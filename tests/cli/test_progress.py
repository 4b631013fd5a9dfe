"""`orchestrator run` in the foreground, as a person or a CI log sees it: one line per event
in a pipe, the live table on a terminal, every view of a run that waits for a person or has
a dead letter, and a provider's expected retry as one line, never a traceback."""

from __future__ import annotations

import fcntl
import os
import pty
import queue
import re
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from tests.fakes.messages_api import FakeMessagesAPI
from tests.helpers import TEMPLATES
from tests.processes import ORCHESTRATOR, clean_environ, cli

GOAL = "Build a todo API"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
TWO_TASKS = "name: two\ntasks:\n  - {id: requirements, role: business_analyst}\n" + (
    "  - {id: planning, role: project_manager, depends_on: [requirements]}\n"
)


class Output:
    """What a running command has printed so far, read by a thread so it never blocks."""

    def __init__(self, read: Callable[[], bytes]) -> None:
        self.text = ""
        self._chunks: queue.Queue[bytes] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(read,), daemon=True)
        self._thread.start()

    def _pump(self, read: Callable[[], bytes]) -> None:
        while chunk := read():
            self._chunks.put(chunk)

    def wait_for(self, fragment: str, timeout: float = 240) -> str:
        deadline = time.monotonic() + timeout
        while fragment not in self.text:
            ended = not self._thread.is_alive() and self._chunks.empty()
            if ended or time.monotonic() > deadline:
                why = "before the stream ended" if ended else f"within {timeout}s"
                raise AssertionError(f"no {fragment!r} {why} in:\n{self.text[-3000:]}")
            with suppress(queue.Empty):
                self.text += self._chunks.get(timeout=0.2).decode(errors="replace")
        return self.text

    def rest(self) -> str:
        self._thread.join(timeout=30)
        while not self._chunks.empty():
            self.text += self._chunks.get().decode(errors="replace")
        return self.text


@contextmanager
def piped_run(
    env: dict[str, str], cwd: Path, *args: str
) -> Iterator[tuple[subprocess.Popen[bytes], Output, Output]]:
    """`orchestrator run GOAL ARGS` with stdout and stderr on pipes, as in a CI job."""
    child = subprocess.Popen(
        [ORCHESTRATOR, "run", GOAL, *args],
        env=clean_environ(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    out, err = child.stdout, child.stderr
    try:
        yield (
            child,
            Output(lambda: os.read(out.fileno(), 65536)),
            Output(lambda: os.read(err.fileno(), 65536)),
        )
    finally:
        stop(child)


def stop(child: subprocess.Popen[bytes]) -> None:
    """Ctrl-C for a command a failed test leaves running: it stops the dev server it started."""
    if child.poll() is None:
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=60)
        except subprocess.TimeoutExpired:
            child.kill()
    child.wait(timeout=60)


def run_id_of(text: str) -> str:
    return text.split("Run ", 1)[1].split()[0]


def test_a_piped_run_prints_each_event_as_it_happens_and_waits_for_a_human_signoff(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    """A CI log sees the run go, the question and how to answer it while the run waits;
    every view works on the waiting run; the settings skip a gate and ask a human."""
    env = {**isolated, "REQUIRE_SECURITY_REVIEW": "false"}
    template = str(TEMPLATES / "gated.yaml")
    with piped_run(
        env, tmp_path, "--template", template, "--require-human", "--escalation", "quick"
    ) as (
        child,
        out,
        err,
    ):
        seen = out.wait_for("code_review waits for a person")
        assert child.poll() is None  # printed while the run goes on, not at its end
        run_id = run_id_of(seen)
        for line in ("run started: Build a todo API", "backend started (backend_engineer)"):
            assert line in seen
        assert "code_review passed in round 1" in seen
        assert (
            "human sign-off required: the checks and the reviewer passed "
            "(options: approve, reject, request_changes); answer with: "
            f"orchestrator approve|reject|request-changes {run_id} code_review"
        ) in seen

        status = cli("status", run_id, env=env, cwd=tmp_path)
        assert status.returncode == 0, status.stderr
        assert "waiting for a decision: code_review" in status.stdout
        assert f"answer: orchestrator pending {run_id}" in status.stdout
        graph = cli("graph", run_id, env=env, cwd=tmp_path)
        assert graph.returncode == 0, graph.stderr
        assert graph.stdout.startswith("flowchart TD\n")
        assert "class t_code_review waiting" in graph.stdout
        assert "t_backend --> t_code_review" in graph.stdout
        pending = cli("pending", run_id, env=env, cwd=tmp_path)
        assert "code_review" in pending.stdout and "human sign-off required" in pending.stdout
        listed = cli("runs", env=env, cwd=tmp_path)
        assert "template" in listed.stdout.splitlines()[1]  # the header, under the top rule
        assert any(run_id in row and "waiting" in row for row in listed.stdout.splitlines())

        approved = cli("approve", run_id, "code_review", "--by", "erin", env=env, cwd=tmp_path)
        assert approved.returncode == 0, approved.stderr
        assert child.wait(timeout=120) == 0
        printed, errors = out.rest(), err.rest()

    for line in (
        "code_review: approve by erin",
        "security_review skipped: REQUIRE_SECURITY_REVIEW is false",
        "run completed",
    ):
        assert line in printed, printed
    assert "Traceback" not in errors + printed
    provenance = (tmp_path / "deliverables" / run_id / "PROVENANCE.md").read_text()
    assert "```mermaid\nflowchart TD\n" in provenance
    assert "class t_security_review skipped" in provenance


def test_the_live_table_on_a_terminal_shows_a_waiting_gate_without_crashing(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    main, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    child = subprocess.Popen(
        [ORCHESTRATOR, "run", GOAL, "--template", str(TEMPLATES / "approval.yaml")],
        env=clean_environ({**isolated, "TERM": "xterm-256color"}),
        cwd=tmp_path,
        stdin=child_end,
        stdout=child_end,
        stderr=child_end,
    )
    os.close(child_end)

    def read() -> bytes:
        try:
            return os.read(main, 65536)
        except OSError:  # the terminal closed with the child
            return b""

    screen = Output(read)
    try:
        seen = screen.wait_for("waiting for a decision: approval")
        run_id = run_id_of(ANSI.sub("", seen))
        approved = cli("approve", run_id, "approval", env=isolated, cwd=tmp_path)
        assert approved.returncode == 0, approved.stderr
        assert child.wait(timeout=120) == 0
    finally:
        stop(child)
    shown = ANSI.sub("", screen.rest())
    os.close(main)
    assert "┏" in shown and f"Run {run_id} · approval · waiting" in shown
    assert f"Run {run_id} · approval · completed" in shown
    assert "Traceback" not in shown and "KeyError" not in shown


def test_a_rate_limit_is_one_line_and_a_dead_letter_shows_in_every_view(
    tmp_path: Path, isolated: dict[str, str]
) -> None:
    """The real `anthropic` SDK against the loopback Messages API: a 429 (retried by
    Temporal after the server's retry-after), then a 400 that dead-letters the task."""
    template = tmp_path / "two.yaml"
    template.write_text(TWO_TASKS)
    with FakeMessagesAPI() as api:
        api.enqueue_error(429, "rate limited, slow down", headers={"retry-after": "1"})
        api.enqueue_error(400, "messages.0.content: field required")
        env = {
            **isolated,
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": api.base_url,
            "LLM_MODEL": "claude-sonnet-4-6",
        }
        with piped_run(env, tmp_path, "--template", str(template)) as (child, out, err):
            seen = out.wait_for("requirements waits for a person")
            run_id = run_id_of(seen)
            assert "requirements dead-lettered: " in seen and "field required" in seen
            assert f"orchestrator dlq retry|skip|abort {run_id} requirements" in seen
            status = cli("status", run_id, env=env, cwd=tmp_path)
            assert status.returncode == 0, status.stderr
            assert "dead_lettered" in status.stdout
            assert "dead-lettered: requirements" in status.stdout
            graph = cli("graph", run_id, env=env, cwd=tmp_path)
            assert "class t_requirements dead_lettered" in graph.stdout
            retried = cli("dlq", "retry", run_id, "requirements", env=env, cwd=tmp_path)
            assert retried.returncode == 0, retried.stderr
            assert child.wait(timeout=120) == 0
            printed, errors = out.rest(), err.rest()

    assert "requirements: retry by cli" in printed and "run completed" in printed
    assert errors.splitlines() == [
        "requirements: model call retried after 429 rate_limit_error, next attempt in 1.0 s",
        "requirements: model call failed: 400 invalid_request_error (not retried)",
    ]


def test_at_debug_the_retry_keeps_its_detail(tmp_path: Path, isolated: dict[str, str]) -> None:
    template = tmp_path / "one.yaml"
    template.write_text(TWO_TASKS.split("  - {id: planning")[0])
    with FakeMessagesAPI() as api:
        api.enqueue_error(429, "rate limited, slow down", headers={"retry-after": "1"})
        env = {
            **isolated,
            "ANTHROPIC_API_KEY": "test-key",
            "ANTHROPIC_BASE_URL": api.base_url,
            "LOG_LEVEL": "debug",
        }
        result = cli("run", GOAL, "--template", str(template), env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "model call retried after 429 rate_limit_error, next attempt in 1.0 s" in result.stderr
    assert "Completing activity as failed" in result.stderr
    assert "Traceback" in result.stderr and "rate limited, slow down" in result.stderr
