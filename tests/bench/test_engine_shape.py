"""Temporal alone at a run's shape (`bench.engine_shape`): a worker with nothing but the SDK
on the dev server `orchestrator up` runs, its CPU and memory read beside the project's."""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from bench.compare import activities_scheduled, footprint_rows
from bench.engine_shape import Footprint, temporal_alone
from bench.floor import StepsWorkflow, noop, pause


async def test_temporal_alone_runs_every_workflow_and_reads_both_processes() -> None:
    found = await temporal_alone(runs=2, steps=3, latency=0.05)

    assert found.runs == 2
    # Both workflows ran their three pauses in a row, at once.
    assert 3 * 0.05 <= found.wall_seconds < 30
    # Both processes worked: the worker ran 8 activities and workflow tasks, the server
    # dispatched them; neither is counted in the other.
    assert found.worker_cpu > 0
    assert found.server_cpu > 0
    assert found.cpu == pytest.approx(found.worker_cpu + found.server_cpu)
    # A real SDK worker and dev server hold tens of MiB; the peak is never below the rest.
    assert 20 < found.rest_mib <= found.peak_mib


async def test_a_runs_activities_are_counted_from_its_history(dev_client: Client) -> None:
    queue = f"engine-shape-{uuid.uuid4().hex}"
    async with Worker(
        dev_client, task_queue=queue, workflows=[StepsWorkflow], activities=[noop, pause]
    ):
        handle = await dev_client.start_workflow(
            StepsWorkflow.run, args=[3, queue, 0.01], id=queue, task_queue=queue
        )
        await handle.result()

    assert await activities_scheduled(handle) == 3


def test_the_footprint_rows_put_the_project_beside_temporal_alone() -> None:
    project = Footprint(
        runs=50, wall_seconds=70, worker_cpu=0.5, server_cpu=0.4, rest_mib=300, peak_mib=450
    )
    engine = Footprint(
        runs=50, wall_seconds=11, worker_cpu=0.1, server_cpu=0.2, rest_mib=200, peak_mib=300
    )

    cpu, memory = footprint_rows(project, engine)

    assert (cpu.project, cpu.ideal, cpu.ratio, cpu.goal) == ("0.90 s", "0.30 s", "3.00", "<= 0.3 s")
    assert "50 goals" in memory.measure
    assert (memory.project, memory.ideal, memory.ratio) == ("450 MiB", "300 MiB", "1.50")


def test_the_floor_worker_imports_nothing_of_the_project() -> None:
    # Its memory must be the SDK's own: a fresh interpreter importing it loads no module of
    # ours beyond the bench's floor.
    probe = (
        "import sys, bench.floor_worker; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'core', 'agents', 'workflows', 'activities', 'workers', 'checks', 'sqlalchemy'}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
