"""Settings: every knob caretime reads from its environment (prefix CARETIME_)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from caretime.tenancy.keyshape import key_shape_problem

DEMO_API_KEY = "ct_demo_key_change_me"
DEV_SESSION_SECRET = "caretime-dev-session-secret-change-me"

Provider = Literal["simulator", "twilio", "callapi", "agent"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CARETIME_", extra="ignore")

    env: Literal["development", "test", "production"] = "development"
    database_url: str = "sqlite+aiosqlite:///./var/caretime.db"
    api_key: SecretStr | None = None
    default_tenant: str = "default"
    session_secret: SecretStr = SecretStr(DEV_SESSION_SECRET)
    # When set, /metrics, /health/ready and workers' metrics ports require it as a Bearer token.
    metrics_token: SecretStr | None = None
    demo_data: bool = False

    sms_provider: Provider = "simulator"
    voice_provider: Provider = "simulator"
    callapi_url: str = "http://127.0.0.1:9100"
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    # The default tenant's number (it gets it at start-up while nobody owns it).
    twilio_from: str = ""
    # Numbers per tenant name, as JSON: {"clinic-a": ["+12065550100"], ...}. Twilio replies
    # reach the tenant that owns the number they were sent to.
    tenant_numbers: dict[str, list[str]] = Field(default_factory=dict)
    twilio_base_url: str = "https://api.twilio.com"
    public_url: str = "http://127.0.0.1:8000"
    # Messages per second each provider may be handed (see docs/messaging.md).
    simulator_rate_limit: float = Field(default=10_000, gt=0)
    twilio_rate_limit: float = Field(default=100, gt=0)
    callapi_rate_limit: float = Field(default=10, gt=0)
    callapi_poll_seconds: float = Field(default=5, gt=0)
    # Simulated phone network outcomes: last digits that never answer / are busy, the share
    # of messages that fail, and the seed that makes which ones fail reproducible.
    simulator_from: str = "+15550001000"
    simulator_no_answer_digits: str = ""
    simulator_busy_digits: str = ""
    # Voice calls to numbers ending in one of these digits are answered by a machine.
    simulator_machine_digits: str = ""
    simulator_failure_rate: float = Field(default=0.0, ge=0, le=1)
    simulator_seed: int = 0
    # The AI voice-agent provider: requests per second, and how long an agent may take to
    # accept one (it answers 2xx at once and reports the outcome later).
    agent_rate_limit: float = Field(default=100, gt=0)
    agent_timeout_seconds: float = Field(default=10, gt=0)

    # How long a process serves a valid API key from memory without reading it again: a key
    # revoked on another process is refused within this; 0 reads the key on every request
    # (docs/api.md, "The API key").
    key_cache_seconds: float = Field(default=2, ge=0, le=60)

    # Largest request body accepted (bytes); larger ones are refused with 413 before parsing.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    # Seconds `caretime serve` lets requests in flight finish after SIGTERM, then closes them.
    shutdown_grace_seconds: int = Field(default=10, ge=1)

    workers: int = 1
    worker_concurrency: int = 32
    # How long a claimed job stays its worker's without a heartbeat: a dead worker's jobs
    # return to the queue within this (docs/dispatch.md, "Recovery").
    job_lease_seconds: float = Field(default=30, ge=2, le=3600)
    # PostgreSQL connections per process (see README "Connections"): the pool keeps
    # db_pool_size open (default: the larger of 10 and worker_concurrency), opens up to
    # db_max_overflow more under load, and a checkout waits db_pool_timeout seconds at most.
    db_pool_size: int | None = Field(default=None, ge=1, le=1000)
    db_max_overflow: int = Field(default=20, ge=0, le=1000)
    db_pool_timeout: float = Field(default=30, gt=0, le=600)
    log_level: str = "INFO"
    log_json: bool | None = None

    @property
    def pool_size(self) -> int:
        return self.db_pool_size or max(10, self.worker_concurrency)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @model_validator(mode="after")
    def _api_key_has_a_usable_shape(self) -> Settings:
        problem = self.api_key and key_shape_problem(self.api_key.get_secret_value())
        if problem:
            raise ValueError(f"CARETIME_API_KEY cannot be used: {problem}")
        return self

    @model_validator(mode="after")
    def _callapi_is_voice_only(self) -> Settings:
        if self.sms_provider == "callapi":
            raise ValueError(
                "CARETIME_SMS_PROVIDER cannot be callapi: the call API places calls only"
            )
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.env == "production":
            problems = list(self._unsafe_defaults())
            if problems:
                raise ValueError("refusing to start in production: " + "; ".join(problems))
        return self

    def _unsafe_defaults(self) -> list[str]:
        problems = []
        if self.api_key is not None and self.api_key.get_secret_value() == DEMO_API_KEY:
            problems.append("CARETIME_API_KEY is the published demo key")
        if self.session_secret.get_secret_value() == DEV_SESSION_SECRET:
            problems.append("CARETIME_SESSION_SECRET is the development default")
        if self.demo_data:
            problems.append("CARETIME_DEMO_DATA would load demo patients")
        return problems


@lru_cache
def get_settings() -> Settings:
    return Settings()
