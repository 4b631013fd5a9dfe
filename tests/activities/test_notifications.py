"""The notify activity against real loopback receivers, called directly and through Temporal."""

from __future__ import annotations

import asyncio
import socket
import uuid
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.notifications import (
    FAILURE_TYPE,
    MAX_RETRY_AFTER,
    NotificationActivities,
    parse_retry_after,
    redact_url,
)
from core.contracts import (
    EscalationPolicy,
    EventType,
    Notification,
    NotificationChannel,
    RunStatus,
)
from core.infrastructure.settings import Settings
from core.persistence.db import Database
from offline import OfflineProvider
from tests.fakes.receivers import HttpReceiver, SmtpReceiver
from tests.helpers import TEMPLATES, make_plan, started
from tests.notify_workflow import NotifyWorkflow
from workflows.humans import NOTIFY_RETRY
from workflows.run_context import DELIVERY_GIVE_UP

SECRET = "s3cr3t-t0ken"
HOOK_PATH = f"/services/T000/B000/{SECRET}"


def make_settings(**env: Any) -> Settings:
    """Settings from these values alone, whatever the environment or a `.env` file say.

    The receivers listen on loopback, so private targets are allowed, as an operator whose
    receivers are all its own would allow them."""
    defaults = {
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": True,
        "SMTP_HOST": None,
        "SMTP_PORT": 25,
        "SMTP_FROM": "orchestrator@example.test",
        "SMTP_USERNAME": None,
        "SMTP_PASSWORD": None,
        "SMTP_STARTTLS": False,
    }
    return Settings(_env_file=None, **{**defaults, **env})


def make_notification(channel: NotificationChannel, target: str) -> Notification:
    return Notification(
        channel=channel,
        target=target,
        run_id="run-42",
        tier=2,
        subject="security_review waits for a decision",
        text="3 high findings <blocking> & no reviewer answered",
        details={"gate": "security_review", "findings": 3, "options": ["approve", "reject"]},
    )


async def notify(notification: Notification, **env: Any) -> str:
    return await NotificationActivities(make_settings(**env).notifications).notify(notification)


async def notify_failure(notification: Notification, **env: Any) -> ApplicationError:
    with pytest.raises(ApplicationError) as caught:
        await notify(notification, **env)
    assert caught.value.type == FAILURE_TYPE
    return caught.value


def closed_port() -> int:
    """A loopback port nothing listens on, so connecting to it is refused."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


@pytest.fixture
def hook() -> Any:
    with HttpReceiver() as receiver:
        yield receiver


@pytest.fixture
def smtp() -> Any:
    with SmtpReceiver() as receiver:
        yield receiver


# --------------------------------------------------------------------------- webhook, Slack


async def test_webhook_posts_the_notification_as_json(hook: HttpReceiver) -> None:
    note = make_notification(NotificationChannel.WEBHOOK, hook.url + HOOK_PATH)

    receipt = await notify(note)

    [(path, headers, body, _)] = hook.wait_for(1)
    assert path == HOOK_PATH
    assert headers["user-agent"] == "orchestrator"
    assert headers["content-type"] == "application/json"
    assert body == {
        "event": "decision.requested",
        "run_id": "run-42",
        "tier": 2,
        "subject": note.subject,
        "text": note.text,
        "details": note.details,
    }
    assert receipt == f"webhook 200 {hook.url}/services/..."


async def test_slack_gets_its_incoming_webhook_format(hook: HttpReceiver) -> None:
    receipt = await notify(make_notification(NotificationChannel.SLACK, hook.url + HOOK_PATH))

    [(_, _, body, _)] = hook.wait_for(1)
    escaped = "3 high findings &lt;blocking&gt; &amp; no reviewer answered"
    assert body["text"] == f"*security_review waits for a decision*\n{escaped}"
    title, text, details, context = body["blocks"]
    assert title == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "*security_review waits for a decision*"},
    }
    assert text["text"] == {"type": "mrkdwn", "text": escaped}
    assert details["type"] == "section"
    assert [field["text"] for field in details["fields"]] == [
        "*gate*\nsecurity_review",
        "*findings*\n3",
        '*options*\n["approve", "reject"]',
    ]
    assert context["type"] == "context"
    assert "run-42" in context["elements"][0]["text"]
    assert receipt.startswith("slack 200 ")
    assert SECRET not in receipt


async def test_slack_splits_many_details_into_sections_of_ten_fields(hook: HttpReceiver) -> None:
    note = make_notification(NotificationChannel.SLACK, hook.url + HOOK_PATH)
    note.details = {f"key{i}": "x" * 5000 for i in range(23)}

    await notify(note)

    [(_, _, body, _)] = hook.wait_for(1)
    sections = [block for block in body["blocks"] if "fields" in block]
    assert [len(section["fields"]) for section in sections] == [10, 10, 3]
    assert max(len(f["text"]) for s in sections for f in s["fields"]) == 2000


async def test_slack_leaves_out_the_section_of_an_empty_text(hook: HttpReceiver) -> None:
    note = make_notification(NotificationChannel.SLACK, hook.url + HOOK_PATH)
    note.text, note.details = "", {}

    await notify(note)

    [(_, _, body, _)] = hook.wait_for(1)
    assert [block["type"] for block in body["blocks"]] == ["section", "context"]


async def test_503_with_retry_after_is_retryable_after_that_delay(hook: HttpReceiver) -> None:
    hook.respond_with(503, "upstream busy", headers={"Retry-After": "7"})

    error = await notify_failure(make_notification(NotificationChannel.WEBHOOK, hook.url))

    assert not error.non_retryable
    assert error.next_retry_delay == timedelta(seconds=7)
    assert "503" in error.message
    assert "upstream busy" in error.message


@pytest.mark.parametrize("status", [408, 429, 500, 502])
async def test_transient_http_statuses_are_retryable(hook: HttpReceiver, status: int) -> None:
    hook.respond_with(status)

    error = await notify_failure(make_notification(NotificationChannel.SLACK, hook.url))

    assert not error.non_retryable
    assert error.next_retry_delay is None


@pytest.mark.parametrize("status", [400, 403, 404, 410])
async def test_client_errors_are_not_retryable(hook: HttpReceiver, status: int) -> None:
    hook.respond_with(status, "no_service " + "x" * 1000)
    note = make_notification(NotificationChannel.SLACK, hook.url + HOOK_PATH)

    error = await notify_failure(note)

    assert error.non_retryable
    assert f"returned {status}: no_service x" in error.message
    assert len(error.message) < 400, "the body is cut to a short excerpt"
    assert SECRET not in error.message


async def test_connection_refused_is_retryable_and_keeps_the_token_secret() -> None:
    url = f"http://127.0.0.1:{closed_port()}{HOOK_PATH}"

    error = await notify_failure(make_notification(NotificationChannel.WEBHOOK, url))

    assert not error.non_retryable
    assert SECRET not in error.message
    assert error.__cause__ is None, "the cause may quote the full URL"


async def test_a_target_that_is_not_an_http_url_is_not_retryable() -> None:
    error = await notify_failure(
        make_notification(NotificationChannel.WEBHOOK, "ftp://example.test/x")
    )

    assert error.non_retryable


@pytest.mark.parametrize("channel", [NotificationChannel.WEBHOOK, NotificationChannel.SLACK])
async def test_a_private_target_is_refused_at_delivery(
    hook: HttpReceiver, channel: NotificationChannel
) -> None:
    """The run's policy was checked when it started; this is the second check, so a URL
    whose name resolves elsewhere by now, or a plan started around the API, gets nothing."""
    note = make_notification(channel, hook.url + HOOK_PATH)

    error = await notify_failure(note, WEBHOOK_ALLOW_PRIVATE_TARGETS=False)

    assert error.non_retryable
    assert "resolves to 127.0.0.1, a non-public address" in error.message
    assert SECRET not in error.message
    assert hook.requests == []


async def test_the_proxy_environment_is_ignored(
    hook: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A proxy would make the request to a target nobody checked."""
    with HttpReceiver() as proxy:
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.setenv(name, proxy.url)
            monkeypatch.setenv(name.lower(), proxy.url)
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)

        await notify(make_notification(NotificationChannel.WEBHOOK, hook.url + HOOK_PATH))

        assert [r.path for r in hook.wait_for(1)] == [HOOK_PATH]
        assert proxy.requests == []


async def test_the_request_goes_to_the_address_that_was_checked(
    hook: HttpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers loopback to the check, then another address. The
    request must go where the check looked, with the name still in its Host header."""
    loop = asyncio.get_running_loop()
    resolve = loop.getaddrinfo
    lookups: list[str] = []
    name = "hooks.rebind.test"

    async def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != name:
            return await resolve(host, port, *args, **kwargs)
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "10.255.255.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", rebinding)
    url = f"http://{name}:{hook.port}{HOOK_PATH}"

    receipt = await notify(make_notification(NotificationChannel.WEBHOOK, url))

    [request] = hook.wait_for(1)
    assert request.headers["host"] == f"{name}:{hook.port}"
    assert lookups == [name]
    assert receipt == f"webhook 200 http://{name}:{hook.port}/services/..."


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://hooks.slack.com/services/T0/B0/tok", "https://hooks.slack.com/services/..."),
        ("https://example.test/hook", "https://example.test/hook"),
        ("https://example.test/hook?token=tok", "https://example.test/hook/..."),
        ("https://user:pw@example.test:8443/a/tok", "https://example.test:8443/a/..."),
        ("http://[::1]:8080/a/b", "http://[::1]:8080/a/..."),
        ("https://example.test", "https://example.test"),
        ("http://example.test:99999/a", "<invalid URL>"),
    ],
)
def test_redact_url_keeps_only_scheme_host_and_first_segment(url: str, redacted: str) -> None:
    assert redact_url(url) == redacted


def test_parse_retry_after_reads_seconds_and_http_dates() -> None:
    assert parse_retry_after("3") == timedelta(seconds=3)
    in_a_minute = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    delay = parse_retry_after(in_a_minute)
    assert delay is not None
    assert timedelta(seconds=55) < delay <= timedelta(seconds=60)
    assert parse_retry_after("86400") == MAX_RETRY_AFTER
    for unusable in (None, "", "0", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"):
        assert parse_retry_after(unusable) is None


# --------------------------------------------------------------------------- email


async def test_email_is_delivered_over_smtp(smtp: SmtpReceiver) -> None:
    note = make_notification(NotificationChannel.EMAIL, "lead@example.test")

    receipt = await notify(note, SMTP_HOST=smtp.host, SMTP_PORT=smtp.port)

    [message] = smtp.wait_for(1)
    assert message["From"] == "orchestrator@example.test"
    assert message["To"] == "lead@example.test"
    assert message["Subject"] == "security_review waits for a decision"
    assert message["Message-ID"].endswith("@example.test>")
    body = message.get_content()
    assert note.text in body
    assert "run: run-42" in body
    assert "gate: security_review" in body
    assert 'options: ["approve", "reject"]' in body
    assert receipt == f"email sent to lead@example.test via {smtp.host}:{smtp.port}"


async def test_email_logs_in_when_credentials_are_configured() -> None:
    with SmtpReceiver(credentials=("bot", "pa55word")) as smtp:
        server = {"SMTP_HOST": smtp.host, "SMTP_PORT": smtp.port, "SMTP_USERNAME": "bot"}
        note = make_notification(NotificationChannel.EMAIL, "lead@example.test")

        await notify(note, SMTP_PASSWORD="pa55word", **server)
        assert len(smtp.wait_for(1)) == 1

        error = await notify_failure(note, SMTP_PASSWORD="wrong-pa55word", **server)
        assert error.non_retryable
        assert "535" in error.message
        assert "pa55word" not in error.message


@pytest.mark.parametrize(
    ("reply", "retryable"),
    [("451 4.3.0 Try again later", True), ("554 5.6.0 Message rejected", False)],
)
async def test_smtp_reply_codes_decide_retries(
    smtp: SmtpReceiver, reply: str, retryable: bool
) -> None:
    smtp.respond_with(reply)
    note = make_notification(NotificationChannel.EMAIL, "lead@example.test")

    error = await notify_failure(note, SMTP_HOST=smtp.host, SMTP_PORT=smtp.port)

    assert error.non_retryable is not retryable
    assert reply in error.message
    assert smtp.messages == []


async def test_unreachable_smtp_server_is_retryable() -> None:
    note = make_notification(NotificationChannel.EMAIL, "lead@example.test")

    error = await notify_failure(note, SMTP_HOST="127.0.0.1", SMTP_PORT=closed_port())

    assert not error.non_retryable


async def test_email_without_smtp_host_is_not_retryable() -> None:
    error = await notify_failure(make_notification(NotificationChannel.EMAIL, "lead@example.test"))

    assert error.non_retryable
    assert error.message == "email notification needs SMTP_HOST"


# --------------------------------------------------------------------------- through Temporal


async def test_retry_policy_delivers_after_a_503(
    dev_env: WorkflowEnvironment, hook: HttpReceiver
) -> None:
    hook.respond_with(503, "busy", headers={"Retry-After": "1"})
    activities = NotificationActivities(make_settings().notifications)
    queue = f"notify-test-{uuid.uuid4().hex}"
    note = make_notification(NotificationChannel.WEBHOOK, hook.url + HOOK_PATH)

    async with Worker(
        dev_env.client, task_queue=queue, workflows=[NotifyWorkflow], activities=[activities.notify]
    ):
        receipt = await dev_env.client.execute_workflow(
            NotifyWorkflow.run, note, id=queue, task_queue=queue
        )

    assert receipt == f"webhook 200 {hook.url}/services/..."
    first, second = hook.requests
    assert first.body == second.body
    # Retry-After (1 s) replaced the policy's 200 ms initial interval.
    assert second.received_at - first.received_at >= 0.9


async def test_a_dead_target_stops_holding_a_decided_run_after_the_give_up(
    time_skipping_env: WorkflowEnvironment, sqlite_db: Database, hook: HttpReceiver
) -> None:
    """The run ends only after its notifications; one that keeps failing used to keep an
    approved run open through all 20 attempts, each up to 5 minutes apart (about an hour)."""
    hook.respond_with(503, "down", times=100)
    policy = EscalationPolicy(tier1_after_seconds=0, webhook_url=hook.url + HOOK_PATH)
    plan = make_plan(template=str(TEMPLATES / "approval.yaml"), escalation=policy)

    async with started(
        time_skipping_env.client, sqlite_db, OfflineProvider(), plan, make_settings()
    ) as handle:
        await asyncio.to_thread(hook.wait_for, 1, 60)
        await handle.signal("decide", {"gate": "approval", "decision": "approve"})
        final = await handle.result()
        closed = (await handle.describe()).close_time

    assert final.status == RunStatus.COMPLETED
    [decided] = [e for e in final.events if e.type == EventType.DECISION_MADE]
    assert closed is not None
    assert closed - decided.at <= DELIVERY_GIVE_UP + timedelta(minutes=1)
    assert NOTIFY_RETRY.maximum_attempts > len(hook.requests) > 1
