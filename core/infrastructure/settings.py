"""Every setting a process reads, from the environment (or `.env`), with defaults that need nothing.

Settings come in sections, one per room: a room takes only its slice (`settings.sandbox`,
`settings.provider`, ...). Each section reads its own environment variables, whose names
are the documented ones (`ANTHROPIC_API_KEY`, `SANDBOX_MEMORY_MB`, ...).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_ANTHROPIC_VALIDATION_MODEL = "claude-haiku-4-5"
"""Validation is a checklist, not a design task: a Haiku-class model is enough and cheap."""

SECTION_CONFIG = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)


class StorageSettings(BaseSettings):
    """Where the embedded stack and the database keep their data."""

    model_config = SECTION_CONFIG

    data_dir: Path = Field(default=Path(".orchestrator"), validation_alias="ORCHESTRATOR_DATA_DIR")
    """Where the embedded stack keeps its SQLite files."""
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'orchestrator.db').resolve()}"


class TemporalSettings(BaseSettings):
    """The Temporal server, the Web UI and the payload codec."""

    model_config = SECTION_CONFIG

    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_port: int = Field(default=7233, validation_alias="ORCHESTRATOR_TEMPORAL_PORT")
    temporal_ui_port: int = Field(default=8233, validation_alias="ORCHESTRATOR_UI_PORT")
    payload_codec: bool | None = Field(
        default=None,
        validation_alias="PAYLOAD_CODEC",
        description="Compress (and with a key, encrypt) new payloads; default: on when "
        "PAYLOAD_ENCRYPTION_KEY is set, else off (plain JSON that the Web UI and `temporal` "
        "show as is). Encoded payloads are decoded either way.",
    )
    payload_encryption_key: SecretStr | None = Field(
        default=None,
        validation_alias="PAYLOAD_ENCRYPTION_KEY",
        description="AES-256-GCM keys, comma-separated `id:base64` (or bare base64); "
        "the first encrypts, all decrypt.",
    )
    codec_cors_origins: str | None = Field(
        default=None,
        validation_alias="CODEC_CORS_ORIGINS",
        description="Comma-separated origins allowed to call /codec from a browser; "
        "default: the local Web UI (http://127.0.0.1:<ui port>, http://localhost:<ui port>).",
    )
    ui_codec_endpoint: str | None = Field(
        default=None,
        validation_alias="ORCHESTRATOR_UI_CODEC_ENDPOINT",
        description="The API's /codec URL, e.g. http://127.0.0.1:8000/codec: the embedded "
        "dev server's Web UI decodes payloads there. Unset while the codec is on: the embedded "
        "stack serves a codec of its own on ORCHESTRATOR_CODEC_PORT.",
    )
    codec_port: int = Field(
        default=8234,
        validation_alias="ORCHESTRATOR_CODEC_PORT",
        description="Loopback port of the codec server the embedded stack serves its Web UI "
        "when the codec is on and ORCHESTRATOR_UI_CODEC_ENDPOINT is unset.",
    )
    worker_shutdown_seconds: float = Field(
        default=10.0, ge=0, validation_alias="ORCHESTRATOR_WORKER_SHUTDOWN_SECONDS"
    )
    """On SIGTERM a worker stops polling and lets its running activities finish for this
    long; one still running then fails over to another worker at once."""

    @property
    def encodes_payloads(self) -> bool:
        """Whether new payloads are encoded: PAYLOAD_CODEC, else whether a key is set."""
        if self.payload_codec is not None:
            return self.payload_codec
        key = self.payload_encryption_key
        return key is not None and bool(key.get_secret_value().strip())

    @property
    def target_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.temporal_ui_port}"

    @property
    def codec_origins(self) -> list[str]:
        if self.codec_cors_origins is not None:
            return [o.strip().rstrip("/") for o in self.codec_cors_origins.split(",") if o.strip()]
        return [self.ui_url, f"http://localhost:{self.temporal_ui_port}"]


class ProviderSettings(BaseSettings):
    """The model provider, models, prices, context budgets and model-call queues."""

    model_config = SECTION_CONFIG

    llm_provider: str | None = Field(
        default=None,
        validation_alias="LLM_PROVIDER",
        description="anthropic, openai or offline; default: anthropic when ANTHROPIC_API_KEY "
        "is set, else offline.",
    )
    llm_model: str | None = Field(default=None, validation_alias="LLM_MODEL")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    openai_api_key: SecretStr | None = Field(
        default=None,
        validation_alias="OPENAI_API_KEY",
        description="Key for LLM_PROVIDER=openai; optional for a local server that needs none.",
    )
    openai_base_url: str | None = Field(
        default=None,
        validation_alias="OPENAI_BASE_URL",
        description="OpenAI-compatible endpoint for LLM_PROVIDER=openai, e.g. "
        "http://127.0.0.1:11434/v1 (Ollama); default: https://api.openai.com/v1.",
    )
    openai_max_tokens_field: Literal["max_tokens", "max_completion_tokens"] | None = Field(
        default=None,
        validation_alias="OPENAI_MAX_TOKENS_FIELD",
        description="Request field for the output limit; default: max_completion_tokens on "
        "api.openai.com, max_tokens on any other endpoint.",
    )
    model_pricing: dict[str, dict[str, float]] = Field(
        default_factory=dict,
        validation_alias="MODEL_PRICING",
        description='JSON {"model key": {"input": .., "output": .., "cache_write": .., '
        '"cache_read": ..}} in USD per million tokens, merged over the built-in price table.',
    )
    llm_role_models: dict[str, str] = Field(
        default_factory=dict,
        validation_alias="LLM_ROLE_MODELS",
        description='JSON {"role": "model"}: that role\'s model instead of LLM_MODEL '
        "(a model named for the run or the task still wins).",
    )
    llm_role_max_tokens: dict[str, int] = Field(
        default_factory=dict,
        validation_alias="LLM_ROLE_MAX_TOKENS",
        description='JSON {"role": tokens}: that role\'s output limit per model call.',
    )
    validation_model: str | None = Field(
        default=None,
        validation_alias="VALIDATION_MODEL",
        description="Model of the validator, which checks every task's work; read where runs "
        "start (CLI, API). Default: claude-haiku-4-5 with Anthropic, else the run's model.",
    )
    llm_context_tokens: int | None = Field(
        default=None,
        validation_alias="LLM_CONTEXT_TOKENS",
        description="Input tokens one model call may send (every role); default 120000.",
    )
    llm_role_context_tokens: dict[str, int] = Field(
        default_factory=dict,
        validation_alias="LLM_ROLE_CONTEXT_TOKENS",
        description='JSON {"role": tokens}: that role\'s context budget per model call.',
    )
    context_management: bool = Field(
        default=True,
        validation_alias="CONTEXT_MANAGEMENT",
        description="Summarize upstream artifacts and trim agent history to fit the context "
        "budget; off sends everything whole.",
    )
    summary_model: str | None = Field(
        default=None,
        validation_alias="SUMMARY_MODEL",
        description="Model that summarizes oversized upstream artifacts; default: the "
        "provider's cheap model (claude-haiku-4-5 on Anthropic).",
    )
    repository_map_tokens: int = Field(
        default=4_000,
        gt=0,
        validation_alias="REPOSITORY_MAP_TOKENS",
        description="Tokens of a change run's repository map in each agent's task message.",
    )
    summary_tokens: int = Field(
        default=2000,
        ge=100,
        validation_alias="SUMMARY_TOKENS",
        description="Length limit of one artifact summary, in tokens.",
    )
    response_cache: Literal["auto", "on", "off"] = Field(
        default="auto",
        validation_alias="RESPONSE_CACHE",
        description="Answer a request identical to an earlier one of the same tenant from "
        "the stored response; auto: on for every provider but the offline model.",
    )
    offline_latency_seconds: float = Field(default=0.0, validation_alias="OFFLINE_LATENCY_SECONDS")
    offline_call_log: Path | None = Field(default=None, validation_alias="OFFLINE_CALL_LOG")
    offline_command_pause_seconds: float = Field(
        default=0.0,
        ge=0,
        validation_alias="OFFLINE_COMMAND_PAUSE_SECONDS",
        description="The offline backend engineer runs `sleep N` after each test run, in the "
        "same turn: a window for tests that kill the checks worker mid-command.",
    )
    agent_max_concurrent_activities: int | None = Field(
        default=None,
        validation_alias="AGENT_MAX_CONCURRENT_ACTIVITIES",
        description="Model calls one worker runs at once per agent queue (default 100).",
    )
    agent_activities_per_second: float | None = Field(
        default=None,
        validation_alias="AGENT_ACTIVITIES_PER_SECOND",
        description="Model calls per second per agent queue, across all workers (Temporal-enforced).",
    )
    model_heartbeat_timeout_seconds: float = Field(
        default=2.0, gt=0, validation_alias="ORCHESTRATOR_MODEL_HEARTBEAT_TIMEOUT"
    )
    """Seconds without a heartbeat before a model call counts as lost (its worker killed)
    and moves elsewhere; a call beats 4 times per timeout, at most once a second."""

    @property
    def response_cache_enabled(self) -> bool:
        if self.response_cache == "auto":
            return self.resolved_provider != "offline"
        return self.response_cache == "on"

    @property
    def resolved_provider(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "anthropic" if self.anthropic_api_key else "offline"

    @property
    def resolved_validation_model(self) -> str | None:
        """The validator's model for a run started here; None: the run's model."""
        if self.validation_model:
            return self.validation_model
        return DEFAULT_ANTHROPIC_VALIDATION_MODEL if self.resolved_provider == "anthropic" else None


class SandboxSettings(BaseSettings):
    """How the checks worker runs generated code."""

    model_config = SECTION_CONFIG

    max_concurrent_checks: int = Field(
        default=2, validation_alias="ORCHESTRATOR_MAX_CONCURRENT_CHECKS"
    )
    backend: Literal["auto", "bubblewrap", "unshare"] = Field(
        default="auto",
        validation_alias="SANDBOX_BACKEND",
        description="How generated code is isolated: bubblewrap (private filesystem), unshare "
        "(the fallback: namespaces on the host filesystem), or auto (bubblewrap when installed).",
    )
    memory_mb: int = Field(
        default=1024,
        gt=0,
        validation_alias="SANDBOX_MEMORY_MB",
        description="Memory of all processes of one sandboxed command together (cgroup).",
    )
    processes: int = Field(
        default=128,
        gt=0,
        validation_alias="SANDBOX_PROCESSES",
        description="Processes and threads of one sandboxed command together.",
    )
    tmpfs_mb: int = Field(
        default=64,
        gt=0,
        validation_alias="SANDBOX_TMPFS_MB",
        description="Size of each private /tmp, /var/tmp, /dev/shm and /run of a sandbox.",
    )


class NotificationSettings(BaseSettings):
    """Where escalations and webhooks may go, and how email is sent."""

    model_config = SECTION_CONFIG

    smtp_host: str | None = Field(
        default=None,
        validation_alias="SMTP_HOST",
        description="Mail server for email notifications; without it they fail for good.",
    )
    smtp_port: int = Field(default=25, validation_alias="SMTP_PORT")
    smtp_from: str = Field(default="orchestrator@localhost", validation_alias="SMTP_FROM")
    smtp_username: str | None = Field(default=None, validation_alias="SMTP_USERNAME")
    smtp_password: SecretStr | None = Field(default=None, validation_alias="SMTP_PASSWORD")
    smtp_starttls: bool = Field(default=False, validation_alias="SMTP_STARTTLS")
    webhook_allow_private: bool = Field(
        default=False,
        validation_alias="WEBHOOK_ALLOW_PRIVATE_TARGETS",
        description="Allow outbound URLs (webhooks, escalation webhooks, Slack) on private, "
        "loopback and link-local addresses.",
    )


class ApiSettings(BaseSettings):
    """The REST API: authentication, rate limits and request limits."""

    model_config = SECTION_CONFIG

    jwt_secret: SecretStr | None = Field(
        default=None, validation_alias="JWT_SECRET", description="HS256 key for bearer JWTs."
    )
    jwt_public_key: str | None = Field(
        default=None,
        validation_alias="JWT_PUBLIC_KEY",
        description="RS256 public key (PEM, or a path to a PEM file) for bearer JWTs.",
    )
    jwt_issuer: str | None = Field(default=None, validation_alias="JWT_ISSUER")
    jwt_audience: str | None = Field(default=None, validation_alias="JWT_AUDIENCE")
    admin_token: SecretStr | None = Field(
        default=None,
        validation_alias="ORCHESTRATOR_ADMIN_TOKEN",
        description="Operator token for creating organizations over the API.",
    )
    rate_limit_per_minute: int = Field(default=120, validation_alias="RATE_LIMIT_PER_MINUTE")
    rate_limit_storage_uri: str = Field(
        default="memory://",
        validation_alias="RATE_LIMIT_STORAGE_URI",
        description="`memory://` (one API process) or `redis://host:port` (shared).",
    )
    auth_failure_limit: int = Field(
        default=20,
        ge=0,
        validation_alias="AUTH_FAILURE_LIMIT",
        description="Failed authentications per client address and window before every "
        "request from that address answers 429; 0: no limit.",
    )
    auth_failure_window_seconds: int = Field(
        default=60, gt=0, validation_alias="AUTH_FAILURE_WINDOW_SECONDS"
    )
    metrics_cache_seconds: float = Field(
        default=5.0,
        ge=0,
        validation_alias="METRICS_CACHE_SECONDS",
        description="How long the API's /metrics answer is reused; 0: computed per scrape.",
    )
    max_goal_chars: int = Field(default=20_000, validation_alias="ORCHESTRATOR_MAX_GOAL_CHARS")
    max_request_bytes: int = Field(
        default=2 * 1024 * 1024,
        gt=0,
        validation_alias="ORCHESTRATOR_MAX_REQUEST_BYTES",
        description="Request bodies larger than this answer 413 (the codec's have 16 MiB).",
    )
    max_header_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        validation_alias="ORCHESTRATOR_MAX_HEADER_BYTES",
        description="A request line and headers larger than this answer 431.",
    )


class GateSettings(BaseSettings):
    """Which gates every run started here keeps, and whether a person signs them off; read
    where plans are built (`build_plan`), so the CLI and the API agree."""

    model_config = SECTION_CONFIG

    require_code_review: bool = Field(
        default=True,
        validation_alias="REQUIRE_CODE_REVIEW",
        description="Run the templates' code_review gates; false: each is skipped, its "
        "summary saying why.",
    )
    require_security_review: bool = Field(
        default=True,
        validation_alias="REQUIRE_SECURITY_REVIEW",
        description="Run the templates' security_review gates; false: each is skipped, its "
        "summary saying why.",
    )
    require_human_approval: bool = Field(
        default=False,
        validation_alias="REQUIRE_HUMAN_APPROVAL",
        description="Every code_review and security_review gate waits for a human decision "
        "after its checks and reviewer pass, as `orchestrator run --require-human` asks for "
        "one run.",
    )


class RepositorySettings(BaseSettings):
    """What change runs may start from: sizes, and the repositories the operator offers."""

    model_config = SECTION_CONFIG

    max_bytes: int = Field(
        default=50_000_000,
        gt=0,
        validation_alias="REPOSITORY_MAX_BYTES",
        description="Largest repository (tracked files at the ref, or an unpacked archive).",
    )
    max_files: int = Field(
        default=5_000,
        gt=0,
        validation_alias="REPOSITORY_MAX_FILES",
        description="Most tracked files a repository may have.",
    )
    max_file_bytes: int = Field(
        default=1_000_000,
        gt=0,
        validation_alias="REPOSITORY_MAX_FILE_BYTES",
        description="Larger files are kept as references, like binaries.",
    )
    max_archive_bytes: int = Field(
        default=20_000_000,
        gt=0,
        validation_alias="REPOSITORY_MAX_ARCHIVE_BYTES",
        description="Largest archive `POST /repositories` takes (compressed).",
    )
    registered: dict[str, str] = Field(
        default_factory=dict,
        validation_alias="ORCHESTRATOR_REPOSITORIES",
        description='Server-side git repositories tenants may name: JSON {"name": "/path"}.',
    )


class TelemetrySettings(BaseSettings):
    """Logs and traces."""

    model_config = SECTION_CONFIG

    otel_exporter_otlp_endpoint: str | None = Field(
        default=None,
        validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT",
        description="OTLP/HTTP collector for traces; unset: no traces are exported.",
    )
    log_format: str | None = Field(
        default=None,
        validation_alias="LOG_FORMAT",
        description="`json` or `console`; default: console on a terminal, JSON otherwise.",
    )
    log_level: str = Field(default="INFO", validation_alias="LOG_LEVEL")


SECTIONS: dict[str, type[BaseSettings]] = {
    "storage": StorageSettings,
    "temporal": TemporalSettings,
    "provider": ProviderSettings,
    "sandbox": SandboxSettings,
    "notifications": NotificationSettings,
    "api": ApiSettings,
    "gates": GateSettings,
    "repositories": RepositorySettings,
    "telemetry": TelemetrySettings,
}


class Settings(BaseModel):
    """All sections. `Settings(NAME=value, ...)` takes any setting by its environment name
    (or field name) and routes it to its section; `_env_file` as for one pydantic setting."""

    storage: StorageSettings
    temporal: TemporalSettings
    provider: ProviderSettings
    sandbox: SandboxSettings
    notifications: NotificationSettings
    api: ApiSettings
    gates: GateSettings
    repositories: RepositorySettings
    telemetry: TelemetrySettings

    def __init__(self, _env_file: Any = ".env", **values: Any) -> None:
        super().__init__(**_sections(_env_file, values))

    @property
    def temporal_db_file(self) -> Path:
        return self.storage.data_dir / "temporal.db"


def _sections(env_file: Any, values: dict[str, Any]) -> dict[str, Any]:
    sections: dict[str, Any] = {}
    for name, section in SECTIONS.items():
        if name in values:
            sections[name] = values.pop(name)
            continue
        accepted = {
            key
            for field_name, field in section.model_fields.items()
            for key in (field_name, field.validation_alias)
            if isinstance(key, str)
        }
        mine = {key: values.pop(key) for key in list(values) if key in accepted}
        sections[name] = section(_env_file=env_file, **mine)
    if values:
        raise TypeError(f"unknown setting(s): {', '.join(sorted(values))}")
    return sections


@lru_cache
def get_settings() -> Settings:
    return Settings()
