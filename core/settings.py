"""Every setting a process reads, from the environment (or `.env`), with defaults that need nothing."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    data_dir: Path = Field(
        default=Path(".orchestrator"),
        validation_alias="ORCHESTRATOR_DATA_DIR",
        description="Where the embedded stack keeps its SQLite files.",
    )
    database_url: str | None = Field(default=None, validation_alias="DATABASE_URL")
    temporal_address: str | None = Field(default=None, validation_alias="TEMPORAL_ADDRESS")
    temporal_namespace: str = Field(default="default", validation_alias="TEMPORAL_NAMESPACE")
    temporal_port: int = Field(default=7233, validation_alias="ORCHESTRATOR_TEMPORAL_PORT")
    temporal_ui_port: int = Field(default=8233, validation_alias="ORCHESTRATOR_UI_PORT")

    llm_provider: str | None = Field(
        default=None,
        validation_alias="LLM_PROVIDER",
        description="anthropic or offline; default: anthropic when ANTHROPIC_API_KEY is set.",
    )
    llm_model: str | None = Field(default=None, validation_alias="LLM_MODEL")
    anthropic_api_key: str | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")

    offline_latency_seconds: float = Field(default=0.0, validation_alias="OFFLINE_LATENCY_SECONDS")
    offline_call_log: Path | None = Field(default=None, validation_alias="OFFLINE_CALL_LOG")

    max_concurrent_checks: int = Field(
        default=2, validation_alias="ORCHESTRATOR_MAX_CONCURRENT_CHECKS"
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
        default=60.0, validation_alias="ORCHESTRATOR_MODEL_HEARTBEAT_TIMEOUT"
    )

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

    # --- the REST API ---
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
    webhook_allow_private: bool = Field(
        default=False,
        validation_alias="WEBHOOK_ALLOW_PRIVATE_TARGETS",
        description="Allow webhook URLs on private, loopback and link-local addresses.",
    )
    max_goal_chars: int = Field(default=20_000, validation_alias="ORCHESTRATOR_MAX_GOAL_CHARS")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'orchestrator.db').resolve()}"

    @property
    def resolved_provider(self) -> str:
        if self.llm_provider:
            return self.llm_provider
        return "anthropic" if self.anthropic_api_key else "offline"

    @property
    def target_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir / "temporal.db"

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.temporal_ui_port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
