"""Which worker serves what, with the limits operators set for provider rate limits."""

from __future__ import annotations

from temporalio.client import Client

from core.contracts import CHECKS_QUEUE, TASK_QUEUE, agent_queue
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from offline import OfflineProvider
from workers.main import build_workers


async def test_agent_queues_carry_the_configured_model_call_limits(
    dev_client: Client, sqlite_db: Database
) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        AGENT_MAX_CONCURRENT_ACTIVITIES=4,
        AGENT_ACTIVITIES_PER_SECOND=2.5,
        ORCHESTRATOR_MAX_CONCURRENT_CHECKS=1,
    )
    # A client of its own: a worker registers with its client until it shuts down, and these
    # are never run, so on the shared client they would block later tests' workers.
    client = await Client.connect(
        dev_client.service_client.config.target_host, data_converter=dev_client.data_converter
    )
    workers = build_workers(
        client,
        db=sqlite_db,
        provider=OfflineProvider(),
        settings=settings,
        queues=[TASK_QUEUE, CHECKS_QUEUE, agent_queue("backend_engineer")],
    )
    configs = {w.task_queue: w.config() for w in workers}

    agent = configs[agent_queue("backend_engineer")]
    assert agent.get("max_concurrent_activities") == 4
    assert agent.get("max_task_queue_activities_per_second") == 2.5
    assert configs[CHECKS_QUEUE].get("max_concurrent_activities") == 1
    assert configs[TASK_QUEUE].get("max_task_queue_activities_per_second") is None
    orchestration = {a.__name__ for a in configs[TASK_QUEUE].get("activities", [])}
    assert {"deliver_webhooks", "notify", "record_run_finished"} <= orchestration
