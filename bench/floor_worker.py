"""A worker with nothing in it but Temporal's SDK and the floor workflows: what the engine
alone costs in CPU and memory, beside `orchestrator worker` (`bench.engine_shape`).

    python -m bench.floor_worker ADDRESS

It imports only `temporalio` and `bench.floor`, so its memory is the SDK's own.
"""

from __future__ import annotations

import asyncio
import sys

from temporalio.client import Client
from temporalio.worker import Worker

from bench.floor import StepsWorkflow, noop, pause

WORKFLOW_QUEUE = "bench-floor"
ACTIVITY_QUEUE = "bench-floor-activities"
SERVING = "worker serving"


async def serve(address: str) -> None:
    client = await Client.connect(address)
    async with (
        Worker(client, task_queue=WORKFLOW_QUEUE, workflows=[StepsWorkflow]),
        Worker(client, task_queue=ACTIVITY_QUEUE, activities=[noop, pause]),
    ):
        print(SERVING, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: python -m bench.floor_worker ADDRESS", file=sys.stderr)
        sys.exit(2)
    asyncio.run(serve(sys.argv[1]))
