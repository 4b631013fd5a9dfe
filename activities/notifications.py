"""The notify activity: tells a person or a system that a run waits for a decision.

One attempt per call. Temporal's retry policy is the only retry loop, so every failure
is classified here instead: transient ones (network, timeouts, HTTP 408/429/5xx, SMTP 4xx)
raise a retryable `ApplicationError`, ones a retry cannot fix raise a non-retryable one.
Webhook URLs usually embed their token, so only a redacted form ever leaves this module.
Webhook and Slack targets pass the platform's one outbound guard (`core/infrastructure/outbound.py`) when
the run starts and again here, on every attempt.
"""

from __future__ import annotations

import asyncio
import json
import smtplib
import ssl
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parsedate_to_datetime
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from core.contracts import NOTIFY, Notification, NotificationChannel
from core.infrastructure import outbound
from core.infrastructure.outbound import redact_url
from core.infrastructure.settings import NotificationSettings

EVENT = "decision.requested"
FAILURE_TYPE = "NotificationFailed"
USER_AGENT = "orchestrator"
HTTP_TIMEOUT_SECONDS = 10.0
SMTP_TIMEOUT_SECONDS = 10.0
EXCERPT_CHARS = 200
RETRYABLE_HTTP_STATUSES = frozenset({408, 429})
"""Besides every 5xx."""
RETRY_AFTER_STATUSES = frozenset({429, 503})
MAX_RETRY_AFTER = timedelta(minutes=10)
"""A receiver cannot park an escalation longer than this with one `Retry-After` header."""

# Slack rejects the whole message when a block exceeds its limits, so text is cut to fit.
SLACK_TEXT_LIMIT = 3000
SLACK_FIELD_LIMIT = 2000
SLACK_FIELDS_PER_SECTION = 10


class NotificationActivities:
    def __init__(self, settings: NotificationSettings) -> None:
        self.settings = settings

    @activity.defn(name=NOTIFY)
    async def notify(self, notification: Notification) -> str:
        """Deliver one notification; returns a one-line receipt that is safe to log."""
        match notification.channel:
            case NotificationChannel.WEBHOOK:
                return await self._post(notification, webhook_payload(notification))
            case NotificationChannel.SLACK:
                return await self._post(notification, slack_payload(notification))
            case NotificationChannel.EMAIL:
                return await self._send_email(notification)

    async def _post(self, notification: Notification, payload: dict[str, Any]) -> str:
        channel, url = notification.channel.value, notification.target
        where = redact_url(url)
        try:
            reply = await outbound.post(
                url,
                json.dumps(payload).encode(),
                {"Content-Type": "application/json", "User-Agent": USER_AGENT},
                allow_private=self.settings.webhook_allow_private,
                timeout=HTTP_TIMEOUT_SECONDS,
            )
        except outbound.UnsafeTarget as exc:
            # A host without an address may get one; any other refusal stays a refusal.
            retryable = isinstance(exc, outbound.UnresolvedTarget)
            raise _failure(f"{channel} target {where} refused: {exc}", retryable) from None
        except outbound.DeliveryFailed as exc:
            raise _failure(f"{channel} POST {where} failed: {exc}", retryable=True) from None

        status = reply.status_code
        if reply.ok:
            return f"{channel} {status} {where}"
        body = " ".join(reply.excerpt.replace(url, where).split())
        raise _failure(
            f"{channel} POST {where} returned {status}: {_cut(body, EXCERPT_CHARS)}",
            retryable=status in RETRYABLE_HTTP_STATUSES or status >= 500,
            retry_after=(
                parse_retry_after(reply.headers.get("Retry-After"))
                if status in RETRY_AFTER_STATUSES
                else None
            ),
        )

    async def _send_email(self, notification: Notification) -> str:
        host, port = self.settings.smtp_host, self.settings.smtp_port
        if not host:
            raise _failure("email notification needs SMTP_HOST", retryable=False)
        try:
            message = email_message(notification, sender=self.settings.smtp_from)
        except ValueError as exc:
            raise _failure(
                f"email to {notification.target!r} is invalid: {exc}", retryable=False
            ) from exc
        where = f"{host}:{port}"
        try:
            # smtplib blocks; a thread keeps the worker's event loop free for other activities.
            await asyncio.to_thread(self._smtp_send, host, port, message)
        except (smtplib.SMTPException, OSError) as exc:
            raise _smtp_failure(exc, where) from exc
        return f"email sent to {notification.target} via {where}"

    def _smtp_send(self, host: str, port: int, message: EmailMessage) -> None:
        settings = self.settings
        with smtplib.SMTP(host, port, timeout=SMTP_TIMEOUT_SECONDS) as smtp:
            if settings.smtp_starttls:
                smtp.starttls(context=ssl.create_default_context())
            if settings.smtp_username:
                password = (
                    settings.smtp_password.get_secret_value() if settings.smtp_password else ""
                )
                smtp.login(settings.smtp_username, password)
            smtp.send_message(message)


# --------------------------------------------------------------------------- payloads


def webhook_payload(notification: Notification) -> dict[str, Any]:
    return {
        "event": EVENT,
        "run_id": notification.run_id,
        "tier": notification.tier,
        "subject": notification.subject,
        "text": notification.text,
        "details": notification.details,
    }


def slack_payload(notification: Notification) -> dict[str, Any]:
    """Slack's incoming-webhook format; `text` is the fallback shown in push notifications."""
    subject, text = _slack_escape(notification.subject), _slack_escape(notification.text)
    # Slack rejects a section with empty text, so an empty text gets no section.
    blocks = [_slack_section(part) for part in (f"*{subject}*", text) if part]
    fields = [
        {
            "type": "mrkdwn",
            "text": _cut(f"*{_slack_escape(k)}*\n{_slack_escape(v)}", SLACK_FIELD_LIMIT),
        }
        for k, v in _detail_items(notification.details)
    ]
    for start in range(0, len(fields), SLACK_FIELDS_PER_SECTION):
        blocks.append(
            {"type": "section", "fields": fields[start : start + SLACK_FIELDS_PER_SECTION]}
        )
    blocks.append(
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": f"run `{_slack_escape(notification.run_id)}` · tier {notification.tier}",
                }
            ],
        }
    )
    return {"text": _cut(f"*{subject}*\n{text}", SLACK_TEXT_LIMIT), "blocks": blocks}


def email_message(notification: Notification, *, sender: str) -> EmailMessage:
    """Plain text: the notification's text, then its details one per line."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = notification.target.strip()
    # Header values may not span lines; a multi-line subject would make EmailMessage raise.
    message["Subject"] = " ".join(notification.subject.split())
    message["Date"] = format_datetime(datetime.now(UTC))
    # Passing the domain avoids make_msgid's reverse DNS lookup of this host.
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "localhost")
    lines = [notification.text, "", f"run: {notification.run_id}", f"tier: {notification.tier}"]
    lines += [f"{key}: {value}" for key, value in _detail_items(notification.details)]
    message.set_content("\n".join(lines) + "\n")
    return message


def _detail_items(details: dict[str, Any]) -> list[tuple[str, str]]:
    return [
        (str(key), value if isinstance(value, str) else json.dumps(value, default=str))
        for key, value in details.items()
    ]


def _slack_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": _cut(text, SLACK_TEXT_LIMIT)}}


def _slack_escape(text: str) -> str:
    """Slack reads `&`, `<` and `>` as markup (links, mentions), so plain text escapes them."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- HTTP


def parse_retry_after(value: str | None) -> timedelta | None:
    """Seconds or an HTTP date; None (use the policy's backoff) when absent or unusable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        delay = timedelta(seconds=int(value))
    else:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        delay = when - datetime.now(UTC)
    if delay <= timedelta(0):
        return None
    return min(delay, MAX_RETRY_AFTER)


# --------------------------------------------------------------------------- failures


def _failure(
    message: str, retryable: bool, retry_after: timedelta | None = None
) -> ApplicationError:
    return ApplicationError(
        message, type=FAILURE_TYPE, non_retryable=not retryable, next_retry_delay=retry_after
    )


def _smtp_failure(exc: smtplib.SMTPException | OSError, where: str) -> ApplicationError:
    """SMTP reply codes say it all: 4xx is temporary, 5xx permanent."""
    code: int | None = None
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        code, reason = next(iter(exc.recipients.values()), (None, b""))
        detail = f"recipient refused: {code} {_decode(reason)}"
    elif isinstance(exc, smtplib.SMTPResponseException):
        code = exc.smtp_code
        detail = f"{code} {_decode(exc.smtp_error)}"
    else:
        detail = str(exc) or type(exc).__name__
    if code is not None and code >= 400:
        retryable = code < 500
    else:
        # No reply code: a lost connection or a timeout is worth retrying; any other SMTP
        # error (no STARTTLS, no AUTH, no usable auth mechanism) is the configuration's.
        retryable = isinstance(exc, smtplib.SMTPServerDisconnected) or not isinstance(
            exc, smtplib.SMTPException
        )
    return _failure(f"email via {where} failed: {detail}", retryable)


def _decode(reply: bytes | str) -> str:
    text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
    return _cut(" ".join(text.split()), EXCERPT_CHARS)
