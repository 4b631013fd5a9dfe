"""Starting a run survives the API dying mid-request: no run row without its workflow.

`POST /runs` starts the workflow, then writes the run's row; the workflow's first
activity writes the same row. So whenever the API process dies, a row means a workflow
exists, and a workflow means its row will exist. The test holds each of the two
windows open for eight requests at once and SIGKILLs a real `orchestrator api` process
inside it:

- the start on its way to Temporal (a proxy in front of Temporal holds it and never
  delivers it): no row may be left behind;
- the rows' insert waiting on PostgreSQL (a table lock holds the first commit, the other
  rows wait to join the next): the workflows are started, and their own first activities
  must write the rows;

then kills one more API at an arbitrary moment with requests in flight. Workers then
run every started workflow to its end, and every row must match a workflow, every
workflow a row, and nothing may be left `running`.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import signal
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlmodel import select
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from core.contracts import RunStatus, workflow_id_for
from core.infrastructure.local_stack import free_port
from core.infrastructure.temporal import start_run
from core.persistence.db import Database, Run
from core.persistence.tenancy import OrgRole, create_key, create_org
from offline import OfflineProvider
from tests.api_harness import api_settings, isolated_client, serving_api
from tests.helpers import make_plan, metric_value, wait_until
from tests.processes import cli, joining, orchestrator_process, until_ready
from workers.main import serving

IN_FLIGHT = 8
GOAL = "Build a bookstore inventory API"
ONE_TASK = {"name": "one-task", "tasks": [{"id": "requirements", "role": "business_analyst"}]}
WORKFLOW_ID = re.compile(rb"run-[0-9a-f]{32}")
HTTP2_DATA, HTTP2_PADDED = 0x0, 0x8


def grpc_messages(sent: bytes) -> Iterator[bytes]:
    """The gRPC request messages in what a client sent over HTTP/2, decompressed."""
    bodies: dict[int, bytearray] = defaultdict(bytearray)
    at = 0
    while at + 9 <= len(sent):
        length, kind, flags = int.from_bytes(sent[at : at + 3]), sent[at + 3], sent[at + 4]
        stream = int.from_bytes(sent[at + 5 : at + 9]) & 0x7FFFFFFF
        payload = sent[at + 9 : at + 9 + length]
        at += 9 + length
        if kind == HTTP2_DATA:
            if flags & HTTP2_PADDED:
                payload = payload[1 : len(payload) - payload[0]]
            bodies[stream] += payload
    for body in bodies.values():
        at = 0
        while at + 5 <= len(body):
            compressed, size = body[at], int.from_bytes(body[at + 1 : at + 5])
            message = bytes(body[at + 5 : at + 5 + size])
            at += 5 + size
            if len(message) == size:
                yield gzip.decompress(message) if compressed else message


class HoldingProxy:
    """A TCP proxy in front of Temporal that can hold what clients send.

    While it holds, every byte a client sends is kept, never delivered: an RPC on its
    way that never arrives. A connection that had bytes held never forwards again (its
    HTTP/2 stream would be corrupt), so held requests stay undelivered for good.
    """

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.holding = False
        self.held: list[bytearray] = []
        """Per connection, what it sent since the proxy began holding it."""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def address(self) -> str:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    def held_workflow_ids(self) -> set[bytes]:
        """The workflow ids of the held requests (StartWorkflowExecution names its id)."""
        return {
            found
            for sent in self.held
            for message in grpc_messages(bytes(sent))
            for found in WORKFLOW_ID.findall(message)
        }

    async def __aenter__(self) -> HoldingProxy:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection(*self.target)
        self._writers += [client_out, server_out]
        held: bytearray | None = None

        async def pump(
            source: asyncio.StreamReader, sink: asyncio.StreamWriter, from_client: bool
        ) -> None:
            nonlocal held
            try:
                while data := await source.read(65536):
                    if from_client and (self.holding or held is not None):
                        if held is None:
                            held = bytearray()
                            self.held.append(held)
                        held += data
                        continue
                    sink.write(data)
                    await sink.drain()
            except ConnectionError:
                pass  # the other side died: that is the point of this test
            finally:
                sink.close()

        await asyncio.gather(pump(client_in, server_out, True), pump(server_in, client_out, False))


def api_process(
    env: dict[str, str], port: int, log: Path
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    """`orchestrator api`, SIGKILLed if it still runs when the block ends."""
    return orchestrator_process(["api", "--port", str(port)], env, log, stop=signal.SIGKILL)


async def post_runs(http: httpx.AsyncClient) -> list[asyncio.Task[httpx.Response]]:
    body = {"goal": GOAL, "inline_template": ONE_TASK}
    return [asyncio.create_task(http.post("/runs", json=body)) for _ in range(IN_FLIGHT)]


async def killed(child: subprocess.Popen[bytes], posts: list[asyncio.Task[Any]]) -> None:
    """SIGKILL the API; its requests end however they end (most without an answer)."""
    child.kill()
    child.wait(timeout=30)
    await asyncio.gather(*posts, return_exceptions=True)


async def writes_waiting(lock_holder: asyncpg.Connection) -> int:
    """Sessions waiting for the runs table (pg_locks: pg_stat_activity is frozen in a transaction)."""
    count: int = await lock_holder.fetchval(
        "SELECT count(*) FROM pg_locks WHERE relation = 'runs'::regclass AND NOT granted"
    )
    return count


async def goal_workflows(temporal: Client) -> dict[str, WorkflowExecutionStatus | None]:
    return {e.id: e.status async for e in temporal.list_workflows('WorkflowType="GoalWorkflow"')}


async def run_rows(db: Database) -> list[Run]:
    async with db.session() as session:
        return list((await session.execute(select(Run))).scalars())


async def test_killing_the_api_mid_start_leaves_every_run_with_its_workflow(
    dev_env: WorkflowEnvironment, postgres_db: Database, postgres_url: str, tmp_path: Path
) -> None:
    temporal = await isolated_client(dev_env.client)
    org = await create_org(postgres_db, "crash-org")
    key = await create_key(postgres_db, org.id, "member", OrgRole.MEMBER)
    port = free_port()
    log = tmp_path / "api.log"
    async with HoldingProxy(temporal.service_client.config.target_host) as proxy:
        env = joining(
            proxy.address,
            temporal.namespace,
            postgres_url,
            tmp_path / "data",
            RATE_LIMIT_PER_MINUTE="100000",
        )
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", headers={"X-API-Key": key.secret}, timeout=60
        ) as http:
            # 1. Every start is on its way to Temporal and never arrives.
            with api_process(env, port, log) as api:
                await until_ready(f"{http.base_url}/readyz")  # connected through the proxy
                proxy.holding = True
                posts = await post_runs(http)

                async def all_starts_held() -> bool:
                    return len(proxy.held_workflow_ids()) == IN_FLIGHT

                await wait_until(all_starts_held)
                await killed(api, posts)
            proxy.holding = False

            # 2. Every row's insert waits behind a lock on the runs table.
            lock_holder = await asyncpg.connect(postgres_url.replace("+asyncpg", ""))
            try:
                locked = lock_holder.transaction()
                await locked.start()
                await lock_holder.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
                with api_process(env, port, log) as api:
                    await until_ready(f"{http.base_url}/readyz")
                    posts = await post_runs(http)

                    async def all_writes_waiting() -> bool:
                        # Every workflow started; the first row's commit waits on the lock,
                        # the other rows in the process to join the next one.
                        started = len(await goal_workflows(temporal)) == IN_FLIGHT
                        return started and await writes_waiting(lock_holder) >= 1

                    await wait_until(all_writes_waiting)
                    await killed(api, posts)
                await locked.rollback()
            finally:
                await lock_holder.close()

            # 3. Killed at an arbitrary moment: as soon as the first request is answered.
            with api_process(env, port, log) as api:
                await until_ready(f"{http.base_url}/readyz")
                posts = await post_runs(http)
                await asyncio.wait(posts, return_when=asyncio.FIRST_COMPLETED)
                await killed(api, posts)

    running_before_workers = [
        r.id for r in await run_rows(postgres_db) if r.status == RunStatus.RUNNING
    ]
    async with serving(
        temporal, db=postgres_db, provider=OfflineProvider(), settings=api_settings()
    ):

        async def every_workflow_closed() -> bool:
            workflows = await goal_workflows(temporal)
            return bool(workflows) and all(
                s != WorkflowExecutionStatus.RUNNING for s in workflows.values()
            )

        await wait_until(every_workflow_closed, timeout=180)

    workflows = await goal_workflows(temporal)
    rows = {r.workflow_id: r for r in await run_rows(postgres_db)}
    assert rows.keys() - workflows.keys() == set(), (
        f"run rows without a workflow; `running` before any worker ran: {running_before_workers}"
    )
    assert workflows.keys() - rows.keys() == set(), "workflows whose run was never recorded"
    # Window 2 started its eight workflows and the API wrote none of their rows.
    assert len(workflows) >= IN_FLIGHT
    for workflow_id, row in rows.items():
        described = await temporal.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.COMPLETED
        assert row.status == RunStatus.COMPLETED.value and row.tenant == org.id

    # What a client sees: each run closed, none counted as running.
    async with serving_api(postgres_db, temporal, api_settings(), with_workers=False) as harness:
        http = harness.http({"X-API-Key": key.secret})
        for row in rows.values():
            shown = await http.get(f"/runs/{row.id}/status")
            assert shown.status_code == 200 and shown.json()["status"] == "completed"
        scraped = (await harness.http().get("/metrics")).text
        assert metric_value(scraped, "orchestrator_runs", status="running") == 0
        assert metric_value(scraped, "orchestrator_runs", status="completed") == len(rows)


async def test_a_started_run_is_readable_before_any_worker_ran_it(
    dev_env: WorkflowEnvironment, postgres_db: Database
) -> None:
    """The API writes the row itself: the run answers at once, not when a worker gets to it."""
    temporal = await isolated_client(dev_env.client)
    async with serving_api(postgres_db, temporal, api_settings(), with_workers=False) as api:
        tenant = await api.tenant()
        http = api.http(tenant.headers)
        accepted = await http.post("/runs", json={"goal": GOAL, "inline_template": ONE_TASK})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["id"]
        try:
            shown = await http.get(f"/runs/{run_id}")
            assert shown.status_code == 200 and shown.json()["status"] == "running"
            assert [r["id"] for r in (await http.get("/runs")).json()["runs"]] == [run_id]
            cancelled = await http.post(f"/runs/{run_id}/cancel")
            assert cancelled.status_code == 202, cancelled.text
        finally:
            await temporal.get_workflow_handle(workflow_id_for(run_id)).terminate("test done")


async def test_starting_a_run_again_answers_the_run_already_started(
    dev_env: WorkflowEnvironment,
) -> None:
    temporal = await isolated_client(dev_env.client)
    plan = make_plan(GOAL)
    first = await start_run(temporal, plan)
    again = await start_run(temporal, plan)  # open: the same execution
    assert again.id == first.id == workflow_id_for(plan.run_id)
    assert (await again.describe()).run_id == first.result_run_id
    await first.terminate("test done")
    closed = await start_run(temporal, plan)  # closed: never a second execution
    described = await closed.describe()
    assert described.run_id == first.result_run_id
    assert described.status == WorkflowExecutionStatus.TERMINATED
    executions = [e async for e in temporal.list_workflows(f'WorkflowId="{first.id}"')]
    assert len(executions) == 1


async def test_a_detached_cli_run_is_listed_before_any_worker_ran_it(
    dev_env: WorkflowEnvironment, postgres_db: Database, postgres_url: str, tmp_path: Path
) -> None:
    temporal = await isolated_client(dev_env.client)
    target = temporal.service_client.config.target_host
    env = joining(
        target, temporal.namespace, postgres_url, tmp_path / "data", RATE_LIMIT_PER_MINUTE="100000"
    )

    def orchestrator(*args: str) -> subprocess.CompletedProcess[str]:
        return cli(*args, env=env, timeout=120)

    started = await asyncio.to_thread(orchestrator, "run", GOAL, "--detach")
    assert started.returncode == 0, started.stderr
    found = re.search(r"Run ([0-9a-f]{32}) started", started.stdout)
    assert found is not None, started.stdout
    run_id = found[1]
    try:
        listed = await asyncio.to_thread(orchestrator, "runs")
        assert listed.returncode == 0, listed.stderr
        row = next((line for line in listed.stdout.splitlines() if run_id in line), "")
        assert "running" in row.split(), listed.stdout
    finally:
        await temporal.get_workflow_handle(workflow_id_for(run_id)).terminate("test done")
