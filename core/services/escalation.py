"""Escalation policies where runs start: the named presets, and what a policy may name on
this deployment.

The policy's shape is checked by its model (`core.contracts.EscalationPolicy`); what
depends on the deployment is checked here, by the API and the CLI alike, so a run never
starts with a notification that could not be sent: every URL must pass the outbound guard
and email needs a mail server.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from core.contracts import AutoDecision, EscalationPolicy, StoredEscalationPolicy
from core.infrastructure import outbound
from core.infrastructure.settings import Settings

PRESETS: dict[str, EscalationPolicy] = {
    "default": EscalationPolicy(),
    "quick": EscalationPolicy(tier2_after_seconds=60, tier3_after_seconds=300),
    "unattended": EscalationPolicy(
        tier2_after_seconds=60, tier3_after_seconds=600, auto_decision=AutoDecision.APPROVE
    ),
}
"""Policies `orchestrator run --escalation NAME` names: `default` (tier 2 after 4 h, the run
fails after 24 h), `quick` (1 min, fails after 5 min) and `unattended` (1 min, the policy
approves after 10 min). Notification channels come only with a policy of one's own."""


class EscalationRefused(ValueError):
    """One field of the policy cannot be used here; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"escalation.{field}: {reason}")
        self.field = field
        self.reason = reason


def named_policy(value: str) -> EscalationPolicy:
    """A policy given as a preset's name, a JSON file's path, or JSON text, in that order.

    Raises ValueError naming what is wrong with it, field by field.
    """
    if value in PRESETS:
        return PRESETS[value].model_copy()
    path = Path(value)
    source, text = (str(path), path.read_text(encoding="utf-8")) if path.is_file() else ("", value)
    try:
        return EscalationPolicy.model_validate_json(text)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'policy'}: {error['msg']}"
            for error in exc.errors()
        )
        where = f"{source}: " if source else ""
        raise ValueError(
            f"{where}{problems} (a policy is a preset ({', '.join(PRESETS)}), a JSON file or "
            "JSON text)"
        ) from None


async def check_escalation(policy: StoredEscalationPolicy, settings: Settings) -> None:
    """Raise `EscalationRefused` for the first field this deployment cannot honour."""
    urls = {"webhook_url": policy.webhook_url, "slack_webhook_url": policy.slack_webhook_url}
    for field, url in urls.items():
        if url is None:
            continue
        try:
            await outbound.resolve_target(url, settings.notifications.webhook_allow_private)
        except outbound.UnsafeTarget as exc:
            raise EscalationRefused(field, str(exc)) from None
    if policy.email_to and not settings.notifications.smtp_host:
        raise EscalationRefused(
            "email_to", "email notifications need a mail server, and SMTP_HOST is not set"
        )
