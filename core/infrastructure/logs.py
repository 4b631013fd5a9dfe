"""Structured logs (structlog): JSON in production, readable in a terminal, secrets masked.

`configure_logging()` routes the standard library's loggers (Temporal's, uvicorn's) through
the same processors, so every line of a process has one format. `LogContextInterceptor`
binds the run, task, role and attempt of the activity being executed, so every line an
activity logs says which turn of which task it belongs to.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any

import structlog
from pydantic import BaseModel, SecretStr
from temporalio import activity
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from core.contracts import CALL_MODEL, DELIVER_WEBHOOKS, NOTIFY, RUN_CHECKS, RUN_TOOL_CALLS

SECRET_PATTERNS = [
    re.compile(r"sk-ant-[A-Za-z0-9_\-]{8,}"),  # Anthropic keys
    re.compile(r"sk-[A-Za-z0-9_\-]{16,}"),  # OpenAI-style keys
    re.compile(r"orch_[0-9a-f]{12}_[A-Za-z0-9_\-]{16,}"),  # our API keys
    re.compile(r"eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*"),  # JWTs
    re.compile(r"whsec_[A-Za-z0-9_\-]{8,}"),  # webhook signing secrets the platform generates
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._\-]{8,}"),
]
REDACTED = "[redacted]"
# Settings held as plain strings that are secrets all the same (ANTHROPIC_API_KEY).
SECRET_SETTING_SUFFIXES = ("api_key", "_secret", "_token", "_password")

_known_secrets: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Exact values (JWT secret, webhook secrets, SMTP password...) never to be logged."""
    _known_secrets.update(v for v in values if v and len(v) >= 6)


def settings_secrets(settings: BaseModel) -> list[str]:
    """The secrets a process is configured with: its SecretStr settings and its API keys."""
    values = []
    for name in type(settings).model_fields:
        value = getattr(settings, name, None)
        if isinstance(value, SecretStr):
            values.append(value.get_secret_value())
        elif isinstance(value, str) and name.endswith(SECRET_SETTING_SUFFIXES):
            values.append(value)
        elif isinstance(value, BaseModel):
            values += settings_secrets(value)  # a section of the settings
    return values


def redact(text: str) -> str:
    for secret in _known_secrets:
        text = text.replace(secret, REDACTED)
    for pattern in SECRET_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.groups() else "") + REDACTED,
            text,
        )
    return text


def _redact_event(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    for key, value in list(event.items()):
        if isinstance(value, str):
            event[key] = redact(value)
        elif key == "exc_info" or isinstance(value, int | float | bool) or value is None:
            continue
        else:
            event[key] = redact(str(value))
    return event


def configure_logging(
    json_logs: bool | None = None,
    level: str = "INFO",
    secrets: Iterable[str | None] = (),
    failure_notices: Callable[[str], None] | None = None,
) -> None:
    """JSON lines unless stderr is a terminal (or `json_logs` says otherwise).

    `secrets` (see `settings_secrets`) are masked by value wherever they would appear, on
    top of the patterns that catch API keys, JWTs and bearer tokens by their shape.
    `failure_notices` (interactive commands) gets one line per activity failure the
    activity itself classified (a retried 429, a 400 for good) instead of the SDK's warning
    with its traceback, which is kept only at DEBUG.
    """
    register_secrets(secrets)
    if json_logs is None:
        json_logs = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        _add_activity_context,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact_event,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if json_logs
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    if failure_notices is not None:
        handler.addFilter(_FailureNotices(failure_notices))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())  # LOG_LEVEL=debug as well as DEBUG


def get_logger(name: str) -> Any:
    return structlog.stdlib.get_logger(name)


def activity_context(info: activity.Info, args: Iterable[Any]) -> dict[str, Any]:
    """Run, task, role and attempt of an activity, from its info and its (pydantic) input.

    Every key is always present, so a log query can rely on it: `task` and `role` are null
    for the run's own activities (recording the run, delivering webhooks), and a gate's
    checks name the gate as their task with no role (no agent runs them). `attempt` is
    Temporal's retry attempt of this activity; `task_attempt` the task's revision.
    """
    context: dict[str, Any] = {
        "workflow_id": info.workflow_id,
        "run_id": (info.workflow_id or "").removeprefix("run-"),
        "activity": info.activity_type,
        "attempt": info.attempt,
        "task": None,
        "role": None,
    }
    for arg in args:
        key = getattr(arg, "key", None)
        if key is not None:
            context["task"] = getattr(key, "task_id", None)
            context["task_attempt"] = getattr(key, "attempt", None)
            context["turn"] = getattr(key, "turn", None)
        for field in ("role", "gate", "run_id"):
            value = getattr(arg, field, None)
            if isinstance(value, str):
                context[field if field != "gate" else "task"] = value
    return context


def _add_activity_context(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> Any:
    """Lines logged in an activity before the interceptor bound its context: the SDK's own
    "Starting activity" precedes the interceptors, so it gets what the activity's info says
    (run, activity, attempt) and a null task and role."""
    if "activity" not in event and activity.in_activity():
        for key, value in activity_context(activity.info(), ()).items():
            event.setdefault(key, value)
    return event


class _BindActivityContext(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        # Bound for the rest of this asyncio task, not just this call: each activity runs
        # in a task of its own, and the SDK logs its completion after the interceptors return.
        structlog.contextvars.bind_contextvars(**activity_context(activity.info(), input.args))
        return await self.next.execute_activity(input)


class LogContextInterceptor(Interceptor):
    """Worker interceptor: every log line inside an activity names its run, task and role."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _BindActivityContext(next)


# --- activity failures in interactive output -----------------------------------------------

ACTIVITY_LABELS = {
    CALL_MODEL: "model call",
    RUN_TOOL_CALLS: "tool calls",
    RUN_CHECKS: "checks",
    NOTIFY: "notification",
    DELIVER_WEBHOOKS: "webhook delivery",
}
"""What a person calls each activity."""

_PROVIDER_STATUS = re.compile(r"API error (\d{3}(?: [A-Za-z_]+)?)")
_SDK_FAILURE = "Completing activity as failed"


def failure_notice(record: logging.LogRecord) -> str | None:
    """One line for the SDK's warning about an activity that failed with an error the
    activity classified (`ApplicationError`), e.g. `requirements: model call retried after
    429 rate_limit_error, next attempt in 1.0 s`; None for any other record, so an
    unexpected exception (a bug) keeps its traceback."""
    error = record.exc_info[1] if record.exc_info else None
    if (
        record.name != "temporalio.activity"
        or not isinstance(error, ApplicationError)
        or not str(record.msg).startswith(_SDK_FAILURE)
        or not activity.in_activity()
    ):
        return None
    info = activity.info()
    label = ACTIVITY_LABELS.get(info.activity_type, info.activity_type.replace("_", " "))
    task = structlog.contextvars.get_contextvars().get("task")
    what = f"{task}: {label}" if task else label
    found = _PROVIDER_STATUS.search(error.message)
    reason = found.group(1) if found else (error.message.splitlines() or [""])[0][:120]
    delay = _next_attempt_in(error, info.attempt, info.retry_policy)
    if delay is not None:
        return f"{what} retried after {reason}, next attempt in {delay:.1f} s"
    if error.non_retryable:
        return f"{what} failed: {reason} (not retried)"
    return f"{what} failed after {info.attempt} attempts: {reason}"


def _next_attempt_in(
    error: ApplicationError, attempt: int, policy: RetryPolicy | None
) -> float | None:
    """Seconds until Temporal's next attempt, as its retry policy computes them; None when
    there is none (a non-retryable error, the last attempt)."""
    if error.non_retryable or policy is None:
        return None
    if error.type in (policy.non_retryable_error_types or ()):
        return None
    if policy.maximum_attempts and attempt >= policy.maximum_attempts:
        return None
    if error.next_retry_delay is not None:
        return error.next_retry_delay.total_seconds()
    delay = policy.initial_interval * (policy.backoff_coefficient ** (attempt - 1))
    # Temporal's default cap: 100 times the first interval.
    cap = policy.maximum_interval or policy.initial_interval * 100
    return min(delay, cap).total_seconds()


class _FailureNotices(logging.Filter):
    """Turns the SDK's warning about a classified activity failure into one line for a
    person; the warning itself (with its traceback) goes on as a DEBUG record."""

    def __init__(self, show: Callable[[str], None]) -> None:
        super().__init__()
        self._show = show

    def filter(self, record: logging.LogRecord) -> bool:
        line = failure_notice(record)
        if line is None:
            return True
        self._show(redact(line))
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)
