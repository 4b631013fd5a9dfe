"""Asking humans: what a run waits for, answers by update or signal, escalation tiers on
durable timers.

A question waits for an answer: the `submit_decision` or `submit_resolution` update, whose
validator refuses a wrong one with the reason, or the `decide` or `resolve_task` signal
(the Web UI's form, scripts), where a wrong one is logged and dropped. Each escalation
tier is a timer raced against the answer: tier 1 notifies, tier 2 notifies wider, tier 3
lets the run's escalation policy answer by itself.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Literal

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core.contracts import (
        NOTIFY,
        Decision,
        EventType,
        Notification,
        PendingDecision,
        RunStatus,
        StoredEscalationPolicy,
        TaskResolution,
    )
    from workflows.gates import (
        automatic_budget_decision,
        automatic_decision,
        automatic_resolution,
        escalation_tiers,
        tier_channels,
    )

from workflows.run_context import DELIVERY_GIVE_UP, RunContext, deliver, expect

NOTIFY_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=5), maximum_attempts=20)

# workflow.patched ids: histories recorded before each change replay the old path.
PATCH_NOTIFY_GIVE_UP = "notification-give-up"

WaitKind = Literal["gate", "dead_letter", "budget"]
"""What a run waits for: a gate's decision, a dead letter's resolution, a spent budget."""

RESOLUTION_OPTIONS = ("retry", "skip", "abort")

_SUBJECTS: dict[WaitKind, str] = {
    "gate": "gate",
    "budget": "spent budget of",
    "dead_letter": "dead-lettered task",
}


class Humans:
    """The run's open questions to people, and the answers that came in."""

    def __init__(self, run: RunContext) -> None:
        self._run = run
        self._answers: dict[str, Decision | TaskResolution] = {}
        self._checks: dict[str, Callable[[Decision], str | None]] = {}

    def check_answers(self, key: str, check: Callable[[Decision], str | None]) -> None:
        """Also refuse a decision on `key` that `check` finds a problem with (e.g. an
        edited work breakdown that fails the plan's rules)."""
        self._checks[key] = check

    @property
    def pending(self) -> dict[str, PendingDecision]:
        return self._run.pending

    def answer(self, key: str, kind: WaitKind, answer: Decision | TaskResolution) -> None:
        """Take an answer if a question of that kind waits for one of its options.

        A signal's wrong answer is logged and dropped, never kept to count later; the
        updates' validator (`refusal`) has refused theirs before this runs.
        """
        problem = self._mismatch(key, kind, answer)
        if problem is not None:
            workflow.logger.warning("ignored %s: %s", kind, problem)
            return
        self._answers[key] = answer

    def refusal(self, key: str, kind: WaitKind, answer: Decision | TaskResolution) -> str | None:
        """Why an update's answer cannot be taken, in one line; None when it can."""
        problem = self._mismatch(key, kind, answer)
        taken = self._answers.get(key)
        if problem is None and taken is not None:
            problem = f"{key!r} already has an answer the run has not acted on: {_choice(taken)}"
        return problem

    def _mismatch(self, key: str, kind: WaitKind, answer: Decision | TaskResolution) -> str | None:
        pending = self.pending.get(key)
        if pending is None or pending.kind != kind:
            what = "a resolution of task" if kind == "dead_letter" else "a decision on gate"
            now = ", ".join(f"{p.kind} {p.key}" for p in self.pending.values()) or "nothing"
            run_id = self._run.plan.run_id
            return f"run {run_id} is not waiting for {what} {key!r} (it waits for: {now})"
        choice = _choice(answer)
        if choice not in pending.options:
            return (
                f"{choice!r} is not an option for {key!r} (options: {', '.join(pending.options)})"
            )
        check = self._checks.get(key)
        return check(answer) if check is not None and isinstance(answer, Decision) else None

    async def decision(
        self, kind: Literal["gate", "budget"], key: str, reason: str, options: list[str]
    ) -> Decision:
        """A gate's or the budget's decision (the `decide` signal, or the policy's)."""
        return expect(await self._ask(kind, key, reason, options), Decision)

    async def resolution(self, task: str, reason: str) -> TaskResolution:
        """What to do with a dead-lettered task (the `resolve_task` signal, or the policy's)."""
        answer = await self._ask("dead_letter", task, reason, list(RESOLUTION_OPTIONS))
        return expect(answer, TaskResolution)

    async def _ask(
        self, kind: WaitKind, key: str, reason: str, options: list[str]
    ) -> Decision | TaskResolution:
        """Wait for an answer, escalating by the run's policy; tier 3 decides by itself."""
        policy = self._run.plan.escalation
        pending = PendingDecision(
            kind=kind,
            key=key,
            reason=reason,
            since=workflow.now(),
            options=options,
        )
        self.pending[key] = pending
        self._answers.pop(key, None)
        self._publish_run_status()
        self._run.emit(EventType.DECISION_REQUESTED, key, kind=kind, reason=reason, options=options)
        waited = 0.0
        for tier, at in escalation_tiers(policy):
            timer = f"escalation tier {tier} for {_subject(kind, key)}"
            if await self._answer_within(key, at - waited, timer):
                break
            waited = at
            pending.tier = tier
            self._run.show_progress()
            if tier < 3:
                self._notify(tier, pending)
            else:
                self._answers[key] = _automatic_answer(kind, policy, key)
        answer = self._answers.pop(key)
        del self.pending[key]
        self._publish_run_status()
        self._run.emit(
            EventType.DECISION_MADE,
            key,
            decision=_choice(answer),
            by=answer.by,
            comment=answer.comment,
        )
        return answer

    async def _answer_within(self, key: str, seconds: float, timer: str) -> bool:
        if seconds <= 0:
            return key in self._answers
        try:
            await workflow.wait_condition(
                lambda: key in self._answers, timeout=seconds, timeout_summary=timer
            )
        except TimeoutError:
            return False
        return True

    def _notify(self, tier: int, pending: PendingDecision) -> None:
        plan = self._run.plan
        what = _SUBJECTS[pending.kind]
        for channel, target in tier_channels(plan.escalation, tier):
            notification = Notification(
                channel=channel,
                target=target,
                run_id=plan.run_id,
                tier=tier,
                subject=f"Run {plan.run_id}: {what} {pending.key} needs a decision",
                text=f"{pending.reason}\nOptions: {', '.join(pending.options)}",
                details={"kind": pending.kind, "key": pending.key, "goal": plan.goal},
            )
            self._run.spawn(_send(notification))

    def _publish_run_status(self) -> None:
        self._run.publish_status(RunStatus.WAITING if self.pending else RunStatus.RUNNING)


async def _send(notification: Notification) -> None:
    give_up = DELIVERY_GIVE_UP if workflow.patched(PATCH_NOTIFY_GIVE_UP) else None
    await deliver(
        NOTIFY,
        notification,
        what="notification",
        retry_policy=NOTIFY_RETRY,
        give_up=give_up,
        summary=f"notify tier {notification.tier} via {notification.channel.value}",
    )


def _subject(kind: WaitKind, key: str) -> str:
    """What a question is about, as its timers and messages name it."""
    return "the budget" if kind == "budget" else f"{_SUBJECTS[kind]} {key}"


def _choice(answer: Decision | TaskResolution) -> str:
    return answer.decision.value if isinstance(answer, Decision) else answer.action


def _automatic_answer(
    kind: WaitKind, policy: StoredEscalationPolicy, key: str
) -> Decision | TaskResolution:
    if kind == "gate":
        return automatic_decision(policy, key)
    if kind == "budget":
        return automatic_budget_decision()
    return automatic_resolution(policy, key)
