"""What the benchmarks share: a dev server, a database, and one offline `sdlc` run."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from agents.protocol import LLMProvider
from agents.roles import ROLES
from bench.floor import StepsWorkflow, noop
from core.contracts import RunPlan, RunState
from core.infrastructure.local_stack import (
    DevServer,
    dev_server_environment,
    dev_server_tuning_args,
    free_port,
    is_listening,
    temporal_binary,
)
from core.infrastructure.settings import Settings
from core.infrastructure.temporal import (
    connect,
    data_converter,
    ensure_search_attributes,
    start_run,
)
from core.persistence.db import Database
from core.services.runs import final_state
from core.services.templates import load_template
from workers.main import serving
from workflows.dsl import compile_plan

GOAL = "Build a task management API with user authentication"


@asynccontextmanager
async def dev_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_binary(),
        data_converter=data_converter(Settings()),
        dev_server_extra_args=dev_server_tuning_args(),
    )
    try:
        await ensure_search_attributes(env.client)
        yield env
    finally:
        await env.shutdown()


async def timed_sdlc_run(
    env: WorkflowEnvironment,
    db: Database,
    provider: LLMProvider,
    *,
    fixed: bool = False,
    goal: str = GOAL,
) -> tuple[float, RunState]:
    """An `sdlc` run and its wall time; `fixed` keeps the template's implementation tasks
    (no work breakdown expands the stage)."""
    plan = sdlc_plan(fixed=fixed, goal=goal)
    await db.ensure_schema()  # as `orchestrator worker` does before it serves
    async with serving(env.client, db=db, provider=provider, settings=Settings()):
        started = time.perf_counter()
        handle = await start_run(env.client, plan)
        state = await final_state(db, handle)
        return time.perf_counter() - started, state


def sdlc_plan(*, fixed: bool = False, goal: str = GOAL) -> RunPlan:
    plan = compile_plan(
        load_template("sdlc", ROLES), goal=goal, run_id=uuid.uuid4().hex, roles=ROLES
    )
    if fixed:
        plan.stages = []
    return plan


def sqlite_database(directory: Path) -> Database:
    return Database(f"sqlite+aiosqlite:///{directory / 'bench.db'}")


FLOOR_STEPS = 40


def event_seconds(event: HistoryEvent) -> float:
    """When the server wrote a history event, as a Unix time."""
    return event.event_time.ToDatetime().timestamp()


async def step_floor(client: Client, runs: int = 3) -> float:
    """The engine's own cost of one workflow step on this server, in seconds: the median
    time from one no-op activity's completion to the next's in `StepsWorkflow` (a workflow
    task, the next activity's dispatch, its run and its completion), over `runs` runs of
    `FLOOR_STEPS` steps. A model call on a run's critical path costs at least this."""
    gaps: list[float] = []
    queue, activities = "bench-steps", "bench-steps-activities"
    async with (
        Worker(client, task_queue=queue, workflows=[StepsWorkflow]),
        Worker(client, task_queue=activities, activities=[noop]),
    ):
        for _ in range(runs):
            handle = await client.start_workflow(
                StepsWorkflow.run,
                args=[FLOOR_STEPS, activities],
                id=f"steps-{uuid.uuid4().hex}",
                task_queue=queue,
            )
            await handle.result()
            done = [
                event_seconds(event)
                for event in (await handle.fetch_history()).events
                if event.HasField("activity_task_completed_event_attributes")
            ]
            gaps += [later - earlier for earlier, later in itertools.pairwise(done)]
    return statistics.median(gaps)


# --- real processes: a restartable dev server, worker subprocesses, their memory ---------

ORCHESTRATOR = str(Path(sys.executable).parent / "orchestrator")
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> None:
    """Orphans of our children (a sandbox whose worker was killed) become our children, so
    `kill_orphans` can find them instead of init adopting them. Linux only."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _proc_status(pid: int) -> dict[str, str]:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return {}
    return dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)


def _kib(value: str | None) -> int:
    return int(value.split()[0]) if value else 0


def parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                # The command name (field 2) may hold spaces; the ppid follows its ")".
                stat = (entry / "stat").read_text()
                found[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    return found


def descendants(pid: int, tree: dict[int, int] | None = None) -> list[int]:
    tree = parents() if tree is None else tree
    children: dict[int, list[int]] = {}
    for child, parent in tree.items():
        children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> set[int]:
    """SIGKILL a process, its group and every descendant (sandboxes run in sessions of their
    own); the pids signalled."""
    below = descendants(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(child, signal.SIGKILL)
    return {pid, *below}


def kill_orphans(keep: Collection[int] = (), signalled: Collection[int] = ()) -> int:
    """Kill and reap our children that we did not start (orphans adopted as subreaper).

    Returns how many had escaped: not among `signalled` (what `kill_tree` already killed,
    now dead or dying) and still running."""
    tree = parents()
    orphans = [pid for pid, parent in tree.items() if parent == os.getpid() and pid not in keep]
    escaped = 0
    for pid in orphans:
        escaped += pid not in signalled and _state(pid) not in ("Z", "X", "")
        for below in descendants(pid, tree):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(below, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return escaped


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


def worker_env(address: str, database_url: str, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of an `orchestrator worker` on the offline model; `settings` add to it."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "LLM_", "OPENAI_", "OFFLINE_"))
    }
    return {
        **inherited,
        "TEMPORAL_ADDRESS": address,
        "DATABASE_URL": database_url,
        "ORCHESTRATOR_DATA_DIR": str(data_dir),
        "LLM_PROVIDER": "offline",
        **settings,
    }


@dataclass
class WorkerProcess:
    """One `orchestrator worker` subprocess, in a process group of its own."""

    env: dict[str, str]
    log: Path
    metrics_port: int | None = None
    """Serve `/metrics` there (`sandbox_cpu_seconds` reads it)."""
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.started_at = time.time()
        with self.log.open("ab") as out:
            metrics = (
                [] if self.metrics_port is None else ["--metrics-port", str(self.metrics_port)]
            )
            self.process = subprocess.Popen(
                [ORCHESTRATOR, "worker", *metrics],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    async def ready(self, timeout: float = 60.0) -> float:
        """Wait for its "worker serving" line; seconds since start."""
        deadline = time.monotonic() + timeout
        while b"worker serving" not in self.log.read_bytes():
            if not self.alive():
                raise RuntimeError(f"the worker exited; see {self.log}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the worker did not start in {timeout:g} s; see {self.log}")
            await asyncio.sleep(0.05)
        return time.time() - self.started_at

    def sandbox_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds its sandboxed runs used so far, by purpose (an agent's `command`,
        the `tests` and `test_command` checks, the `probe`), as its `/metrics` says
        (`orchestrator_sandbox_cpu_seconds`): counted nowhere else, see
        `machine_cpu_seconds`."""
        assert self.metrics_port is not None, "start it with a metrics port"
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as response:
            text = response.read().decode()
        return {
            sample.labels.get("purpose", ""): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "orchestrator_sandbox_cpu_seconds_sum"
        }

    def kill(self) -> set[int]:
        """SIGKILL its whole tree; the pids signalled."""
        if self.process is None:
            return set()
        signalled = kill_tree(self.process.pid)
        self.process.wait()
        return signalled

    def stop(self) -> None:
        """Ask it to stop, then make sure nothing of it is left."""
        if self.alive():
            assert self.process is not None
            self.process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)
        self.kill()


@dataclass
class FileDevServer:
    """The dev server `orchestrator up` runs (same command line, SQLite file history),
    killable and restartable on the same file and ports."""

    data_dir: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def settings(self) -> Settings:
        # The environment's other settings (the payload codec's key) still apply.
        return Settings(
            ORCHESTRATOR_DATA_DIR=self.data_dir,
            ORCHESTRATOR_TEMPORAL_PORT=self.port,
            ORCHESTRATOR_UI_PORT=self.ui_port,
        )

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, timeout: float = 60.0) -> float:
        """Start it (on the same file and ports each time); seconds until it listens."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with (self.data_dir / "temporal.log").open("ab") as log:
            self.process = subprocess.Popen(
                DevServer(self.settings).command(),
                env=dev_server_environment(),
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        while not is_listening("127.0.0.1", self.port, timeout=0.5):
            if self.process.poll() is not None:
                raise RuntimeError(f"the dev server exited; see {self.data_dir / 'temporal.log'}")
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"the dev server did not listen within {timeout:g} s")
            await asyncio.sleep(0.05)
        return time.monotonic() - started

    async def client(self) -> Client:
        client = await connect(self.settings, self.address)
        await ensure_search_attributes(client)
        return client

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        if self.process is not None:
            kill_tree(self.process.pid)
            self.process.wait()
            self.process = None


def sandbox_cpu(workers: Iterable[WorkerProcess]) -> dict[str, float]:
    """The workers' `sandbox_cpu_seconds` added up, by purpose."""
    total: dict[str, float] = {}
    for worker in workers:
        for purpose, seconds in worker.sandbox_cpu_seconds().items():
            total[purpose] = total.get(purpose, 0.0) + seconds
    return total


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per purpose between two `sandbox_cpu` readings."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()}


def machine_cpu_seconds() -> float:
    """CPU time every core of this machine has been busy so far (`/proc/stat`), other
    services' included. Sandboxed commands never reach their worker's children time (the
    sandbox's first process is killed with its namespace, not reaped up the tree): their
    launcher measures them (`WorkerProcess.sandbox_cpu_seconds`)."""
    counters = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = counters[3] + counters[4]  # idle, iowait
    return (sum(counters) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its reaped children, so far (not its sandboxes: see
    `machine_cpu_seconds`)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime, stime, cutime, cstime: fields 14-17 of stat(5), counted after the ")".
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def read_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; (0, 0) once it is gone."""
    status = _proc_status(pid)
    return _kib(status.get("VmRSS")), _kib(status.get("VmHWM"))


@dataclass
class MemoryWatch:
    """Samples worker processes: each one's own peak (VmHWM, exact, kept by the kernel) and the
    peak of the sum of RSS over the workers and all their descendants (sampled)."""

    pids: list[int]
    every: float = 0.5
    hwm_kib: dict[int, int] = field(default_factory=dict)
    peak_tree_kib: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def sample(self) -> None:
        tree = parents()
        total = 0
        for pid in self.pids:
            rss, hwm = read_memory(pid)
            if hwm:
                self.hwm_kib[pid] = max(self.hwm_kib.get(pid, 0), hwm)
            total += rss + sum(read_memory(child)[0] for child in descendants(pid, tree))
        self.peak_tree_kib = max(self.peak_tree_kib, total)

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def __enter__(self) -> MemoryWatch:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.sample()  # the last reading, while the processes still run
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


@contextmanager
def scratch_directory(prefix: str) -> Iterator[Path]:
    """A temporary directory for databases and logs: removed afterwards, unless the block
    raised, when it stays (and is named on stderr) so the worker logs can be read."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield path
    except BaseException:
        print(f"logs kept in {path}", file=sys.stderr)
        raise
    shutil.rmtree(path, ignore_errors=True)
