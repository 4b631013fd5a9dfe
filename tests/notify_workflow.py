"""A one-activity workflow for tests: sends one notification under a fast retry policy.

Kept apart from the tests so the workflow sandbox can import it without side effects.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.contracts import NOTIFY, Notification

RETRY_POLICY = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5)
"""Bounded, so a broken delivery fails the test instead of retrying until its timeout."""


@workflow.defn
class NotifyWorkflow:
    @workflow.run
    async def run(self, notification: Notification) -> str:
        return await workflow.execute_activity(
            NOTIFY,
            notification,
            result_type=str,
            start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RETRY_POLICY,
        )
