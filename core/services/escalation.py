"""What a run's escalation policy may name on this deployment, checked where runs start.

The policy's shape is checked by its model (`core.contracts.EscalationPolicy`); what
depends on the deployment is checked here, by the API and the CLI alike, so a run never
starts with a notification that could not be sent: every URL must pass the outbound guard
and email needs a mail server.
"""

from __future__ import annotations

from core.contracts import EscalationPolicy
from core.infrastructure import outbound
from core.infrastructure.settings import Settings


class EscalationRefused(ValueError):
    """One field of the policy cannot be used here; `field` names it."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"escalation.{field}: {reason}")
        self.field = field
        self.reason = reason


async def check_escalation(policy: EscalationPolicy, settings: Settings) -> None:
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
