"""Requests per second and p50/p99 latency of the REST API under loopback load.

    python -m bench.api [--clients 50] [--requests 2000] [--starts 200]
                        [--database-url URL | --both] [--client raw|httpx]

The API is `orchestrator api` in its own process (one event loop, as a single replica runs)
and the worker is `orchestrator worker` in another, both on a Temporal dev server and the
database: a fresh SQLite file by default; with `--database-url postgresql+asyncpg://...` a
fresh database created on that server and dropped afterwards; `--both` measures SQLite,
then PostgreSQL (default server 127.0.0.1:5432), and prints the two side by side.

`POST /runs` is measured with no worker running: the runs wait in Temporal, so the figure
is the API's (with Temporal's start and the row's insert), not a worker's taking the same
two cores. Each connection first starts one run that is not measured: a process's first
starts parse the template and fill its caches, as a replica that has served for a while
already has. Then every run but the first is terminated and the worker starts; it runs the
offline model slowly enough (30 s a call) that the run stays open, so
`GET /runs/{id}/status` answers from the workflow's `status` query, then, once the run is
cancelled, from the database.

The load comes from this process: `--clients` connections kept alive, each sending its next
request when the last is answered. `raw` (the default) writes HTTP/1.1 requests on asyncio
streams; `httpx` uses httpx, which spends about as much CPU per request as the API itself,
on the same cores.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from sqlalchemy.engine import make_url
from temporalio.client import Client

from agents.roles import ROLES
from bench.common import (
    GOAL,
    ORCHESTRATOR,
    WorkerProcess,
    cpu_seconds,
    descendants,
    dev_server,
    worker_env,
)
from core.infrastructure.local_stack import free_port
from core.infrastructure.temporal import start_run
from core.persistence import tenancy
from core.persistence.db import Database
from core.services.templates import load_template
from workflows.dsl import compile_plan

POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
"""The server `--both` measures on, as the test suite's (TEST_POSTGRES_DSN)."""

# --- the load ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes


Send = Callable[[str, str, bytes | None], Awaitable[Answer]]
"""(method, path, JSON body) -> the answer, on one client's connection."""


class RawConnection:
    """One keep-alive HTTP/1.1 connection, one request at a time (bodies with a length)."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": host, **headers}.items())
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def send(self, method: str, path: str, body: bytes | None) -> Answer:
        extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body else ""
        request = f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + (body or b"")
        for _ in range(2):  # again on a new connection if the server closed an idle one
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            try:
                writer.write(request)
                status_line = await reader.readline()
            except ConnectionError:
                status_line = b""
            if status_line:
                return await self._rest(reader, int(status_line.split()[1]))
            self.close()
        raise ConnectionError("the server closed the connection without answering")

    async def _rest(self, reader: asyncio.StreamReader, status: int) -> Answer:
        length, close = 0, False
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
            elif name.lower() == "connection":
                close = value.strip().lower() == "close"
        answer = Answer(status, await reader.readexactly(length))
        if close:
            self.close()
        return answer

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@contextlib.asynccontextmanager
async def clients(
    kind: str, base: str, headers: dict[str, str], count: int
) -> AsyncIterator[list[Send]]:
    if kind == "raw":
        url = httpx.URL(base)
        connections = [RawConnection(url.host, url.port or 80, headers) for _ in range(count)]
        try:
            yield [c.send for c in connections]
        finally:
            for connection in connections:
                connection.close()
        return
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=120
    ) as http:

        async def send(method: str, path: str, body: bytes | None) -> Answer:
            sent = (
                {"content": body, "headers": {"Content-Type": "application/json"}} if body else {}
            )
            response = await http.request(method, path, **sent)  # type: ignore[arg-type]
            return Answer(response.status_code, response.content)

        yield [send] * count


@dataclass(frozen=True)
class Figures:
    name: str
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_ms: dict[str, float]
    """CPU milliseconds per request of each process watched."""

    def line(self) -> str:
        cpu = ", ".join(f"{name} {ms:.2f}" for name, ms in self.cpu_ms.items())
        return (
            f"{self.name:<34} {self.per_second:8.1f} req/s   p50 {self.p50_ms:7.1f} ms   "
            f"p99 {self.p99_ms:7.1f} ms   errors {self.errors}/{self.requests}   "
            f"CPU ms/request: {cpu}"
        )


def cpu_of(watch: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in watch.items()}


async def load(
    name: str,
    senders: list[Send],
    total: int,
    request: Callable[[Send, int], Awaitable[int]],
    watch: dict[str, list[int]],
) -> Figures:
    """`total` requests from the concurrent clients, each sending its next when answered;
    `watch` names the processes whose CPU time is counted."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))

    async def client_loop(send: Send) -> None:
        nonlocal errors
        for i in counter:
            started = time.perf_counter()
            try:
                code = await request(send, i)
            except (OSError, asyncio.IncompleteReadError, httpx.HTTPError):
                code = 599
            latencies.append(time.perf_counter() - started)
            errors += code >= 400

    cpu_before, client_before = cpu_of(watch), time.process_time()
    started = time.perf_counter()
    await asyncio.gather(*(client_loop(send) for send in senders))
    seconds = time.perf_counter() - started
    cpu = {name: (used - cpu_before[name]) * 1000 / total for name, used in cpu_of(watch).items()}
    cpu["load client"] = (time.process_time() - client_before) * 1000 / total
    cuts = statistics.quantiles(latencies, n=100)
    figures = Figures(
        name,
        len(latencies) / seconds,
        cuts[49] * 1000,
        cuts[98] * 1000,
        errors,
        len(latencies),
        cpu,
    )
    print(figures.line(), flush=True)
    return figures


# --- the database, the API and the worker ------------------------------------------------


@contextlib.asynccontextmanager
async def fresh_database(url: str | None, scratch: Path) -> AsyncIterator[str]:
    """A SQLite file in `scratch` (url None), or a new database on `url`'s PostgreSQL server
    named `bench_api_<random>`, dropped afterwards; another URL is used as it is."""
    if url is None:
        yield f"sqlite+aiosqlite:///{scratch / 'api.db'}"
        return
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        yield url
        return
    name = f"bench_api_{uuid.uuid4().hex[:10]}"
    admin = parsed.set(drivername="postgresql").render_as_string(hide_password=False)
    server = await asyncpg.connect(admin)
    try:
        await server.execute(f'CREATE DATABASE "{name}"')
        try:
            yield parsed.set(database=name).render_as_string(hide_password=False)
        finally:
            await server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await server.close()


async def wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    async with httpx.AsyncClient() as http:
        for _ in range(600):
            if process.poll() is not None:
                raise RuntimeError(f"the API process exited; see {log}")
            with contextlib.suppress(httpx.TransportError):
                if (await http.get(f"{base}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the API did not start in 60 s; see {log}")


async def quiet(pid: int, timeout: float = 60.0) -> None:
    """Until the process uses under a tenth of a core (the worker has started every run)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(0.5)
        if cpu_seconds(pid) - before < 0.05:
            return


@contextlib.asynccontextmanager
async def api_process(env: dict[str, str], scratch: Path) -> AsyncIterator[tuple[str, int]]:
    """`orchestrator api` on a free port; its base URL and pid."""
    port = free_port()
    log = scratch / "api.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [ORCHESTRATOR, "api", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, process, log)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)


# --- one database --------------------------------------------------------------------------


async def measure(url: str, scratch: Path, args: argparse.Namespace) -> list[Figures]:
    db = Database(url)
    org = await tenancy.create_org(db, f"bench-{uuid.uuid4().hex[:8]}")
    key = (await tenancy.create_key(db, org.id, "bench", tenancy.OrgRole.ADMIN)).secret
    await db.dispose()
    async with dev_server() as env:
        address = env.client.service_client.config.target_host
        # Slow offline model: the run stays open, so its status is a live query.
        worker = WorkerProcess(
            worker_env(address, url, scratch / "worker", OFFLINE_LATENCY_SECONDS="30"),
            scratch / "worker.log",
        )
        api_env = {
            **os.environ,
            "DATABASE_URL": url,
            "TEMPORAL_ADDRESS": address,
            "RATE_LIMIT_PER_MINUTE": str(10**9),
            "LOG_LEVEL": "WARNING",  # no access log line per request
        }
        try:
            async with (
                api_process(api_env, scratch) as (base, api_pid),
                clients(args.client, base, {"X-API-Key": key}, args.clients) as senders,
            ):
                watch = {"api": [api_pid], "temporal": temporal_pids()}
                return await _loads(env.client, senders, worker, watch, args)
        finally:
            worker.stop()


def temporal_pids() -> list[int]:
    """The dev server this process started (the Temporal CLI and what it runs)."""
    found = []
    for pid in descendants(os.getpid()):
        with contextlib.suppress(OSError):
            if "temporal" in Path(f"/proc/{pid}/comm").read_text():
                found.append(pid)
    return found


async def _loads(
    temporal: Client,
    senders: list[Send],
    worker: WorkerProcess,
    watch: dict[str, list[int]],
    args: argparse.Namespace,
) -> list[Figures]:
    run_ids: list[str] = []

    async def start(send: Send, i: int) -> int:
        body = json.dumps({"goal": f"{GOAL} #{i}", "template": "sdlc"}).encode()
        answer = await send("POST", "/runs", body)
        if answer.status == 202:
            run_ids.append(json.loads(answer.body)["id"])
        return answer.status

    async def status(send: Send, _i: int) -> int:
        return (await send("GET", f"/runs/{run_ids[0]}/status", None)).status

    async def until(wanted: Callable[[dict[str, str]], bool], what: str) -> None:
        for _ in range(300):
            answer = await senders[0]("GET", f"/runs/{run_ids[0]}/status", None)
            if answer.status == 200 and wanted(json.loads(answer.body)):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"run {run_ids[0]} {what} within 60 s")

    async def healthz(send: Send, _i: int) -> int:
        return (await send("GET", "/healthz", None)).status

    direct: list[str] = []
    template = load_template("sdlc", ROLES)

    async def start_directly(_send: Send, i: int) -> int:
        plan = compile_plan(template, goal=f"{GOAL} #{i}", run_id=uuid.uuid4().hex, roles=ROLES)
        await start_run(temporal, plan)
        direct.append(plan.run_id)
        return 202

    figures = [
        await load("(floor) GET /healthz", senders, args.requests, healthz, watch),
        await load("(floor) Temporal start, no API", senders, args.starts, start_directly, watch),
    ]
    # A process's first starts parse the template and fill its caches; a replica that has
    # served for a while has done so. One start per connection first, not measured.
    await asyncio.gather(*(start(send, -n) for n, send in enumerate(senders, 1)))
    # No worker yet: the runs wait in Temporal, and the figure is the API's (and Temporal's).
    figures.append(await load("POST /runs", senders, args.starts, start, watch))
    for run_id in direct + run_ids[1:]:  # the first one is enough for the status loads
        await temporal.get_workflow_handle(f"run-{run_id}").terminate("bench")
    worker.start()
    await worker.ready()
    await quiet(worker.pid)
    await until(lambda s: s["source"] == "workflow", "was not answered by its workflow")
    watch = {**watch, "worker": [worker.pid]}
    running = "GET /runs/{id}/status (running)"
    figures.append(await load(running, senders, args.requests, status, watch))
    await senders[0]("POST", f"/runs/{run_ids[0]}/cancel", None)
    await until(lambda s: s["source"] == "database", "did not close after its cancellation")
    closed = "GET /runs/{id}/status (closed)"
    figures.append(await load(closed, senders, args.requests, status, watch))
    return figures


async def main(args: argparse.Namespace) -> None:
    urls = [None, args.database_url or POSTGRES] if args.both else [args.database_url]
    results: list[tuple[str, list[Figures]]] = []
    for url in urls:
        with tempfile.TemporaryDirectory(prefix="bench-api-") as scratch:
            async with fresh_database(url, Path(scratch)) as real_url:
                kind = make_url(real_url).get_backend_name()
                print(
                    f"REST API, {args.clients} concurrent clients ({args.client}), loopback, "
                    f"{os.cpu_count()} cores, database {kind}",
                    flush=True,
                )
                results.append((kind, await measure(real_url, Path(scratch), args)))
    if len(results) > 1:
        print("\nside by side (req/s, p99 ms):")
        print(f"{'':<34} " + "".join(f"{kind:>24}" for kind, _ in results))
        for row, figures in enumerate(zip(*(f for _, f in results), strict=True)):
            cells = "".join(f"{f.per_second:>12.1f} {f.p99_ms:>10.1f} " for f in figures)
            print(f"{results[0][1][row].name:<34} {cells}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument(
        "--database-url",
        help="PostgreSQL: a fresh database on this server (dropped afterwards); "
        "default: a fresh SQLite file",
    )
    parser.add_argument(
        "--both", action="store_true", help="SQLite, then PostgreSQL (--database-url's server)"
    )
    parser.add_argument("--client", choices=("raw", "httpx"), default="raw")
    asyncio.run(main(parser.parse_args()))
