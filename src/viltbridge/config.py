"""Settings, all from `VILTBRIDGE_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="VILTBRIDGE_", env_file=".env", extra="ignore")

    database_url: str = Field(
        default="sqlite:///viltbridge.db",
        description="SQLAlchemy URL: sqlite:///file.db (default) or postgresql://user@host/db",
    )
    secret_key: str | None = Field(
        default=None,
        description="Comma-separated Fernet keys, newest first; if unset, a key file is created on first run",
    )
    # How long the database may keep a request waiting before it gets a 503 with Retry-After (store/db.py). Against a
    # database that accepts connections and never answers, the longest chain is a pool wait and then a connection
    # attempt, or one statement; either stays under 15 s with these defaults.
    database_connect_timeout_seconds: float = Field(
        default=5, gt=0, le=60, description="Give up opening a database connection after this long")
    database_statement_timeout_seconds: float = Field(
        default=10, gt=0, le=600, description="Give up on one SQL statement after this long (PostgreSQL; the server "
                                               "cancels it too)")
    database_pool_timeout_seconds: float = Field(
        default=5, gt=0, le=60, description="Give up waiting for a free pooled connection after this long")
    database_busy_timeout_seconds: float = Field(
        default=8, gt=0, le=60, description="SQLite: how long a write waits for another writer's lock")
    key_file: Path = Path("viltbridge.key")
    public_url: str | None = Field(default=None, description="External base URL used in launch links")
    lms_path_prefix: str = Field(default="/", description="Where the Cornerstone contract is mounted")
    max_body_bytes: int = 1_000_000
    metrics_token: str | None = Field(
        default=None, description="Bearer token Prometheus sends to scrape /metrics; unset, /metrics answers 404")
    oauth_token_ttl_seconds: int = 3600
    # Cornerstone asks for a fresh link on every click, so a link needs to live only from click to page load;
    # a short life limits what a copied link is worth.
    launch_link_max_age_minutes: int = 15
    queue_url: str | None = Field(
        default=None,
        description="Job queue: sqlite:///file, postgresql://… or redis://…; unset: beside the database",
    )
    rate_limit_url: str | None = Field(
        default=None,
        description="Where provider rate-limit buckets live when several processes share an account: redis://…; "
                    "unset: the queue URL if it is Redis, else this process's memory",
    )
    worker_threads: int = Field(default=2, ge=1, le=64, description="Job worker threads per process")
    job_lease_seconds: int = Field(default=300, ge=1, description="How long a worker holds a job before it is "
                                   "presumed lost and handed to another")
    # Where provider calls may go (SSRF guard, `providers/url_guard.py`): public addresses over https only, unless
    # a host is allow-listed; loopback/private addresses only for local simulators and test rigs.
    provider_allow_loopback: bool = Field(
        default=False,
        description="Let provider URLs point at loopback, private or link-local addresses and use http:// "
                    "(local simulators only; never in production)",
    )
    provider_host_allow_list: str = Field(
        default="",
        description="Comma-separated host names and CIDRs provider URLs may use even when they are private "
                    "(e.g. bbb.intranet.example,10.20.0.0/16); http:// is allowed for them too",
    )
    # Brute-force throttle on LMS and console sign-in (`security/throttle.py`), per client IP.
    auth_failure_limit: int = Field(default=10, ge=1, description="Failed sign-ins per client IP and window "
                                    "before further attempts are answered 429 without checking the password")
    auth_failure_window_seconds: int = Field(default=300, ge=1, description="The window failed sign-ins are "
                                             "counted in; an IP over the limit waits until it has passed")
    trusted_proxies: str = Field(
        default="",
        description="Comma-separated IPs/CIDRs of reverse proxies whose X-Forwarded-For names the client; "
                    "unset: the socket peer is the client",
    )
    log_level: str = "INFO"
    log_format: Literal["plain", "json"] = Field(
        default="plain",
        description="plain: one text line per record; json: one JSON object per line (timestamp, level, logger, "
                    "message, correlation_id, exception) for log shippers",
    )
    log_json: bool = Field(default=False, description="The older name of log_format=json")

    @field_validator("log_format", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @property
    def chosen_log_format(self) -> str:
        return "json" if self.log_json else self.log_format

    @property
    def shared_rate_limit_url(self) -> str | None:
        if self.rate_limit_url:
            return self.rate_limit_url
        return self.queue_url if self.queue_url and self.queue_url.startswith(("redis://", "rediss://")) else None

    @property
    def prefix(self) -> str:
        """The contract prefix, normalised to '' or '/x/y' (no trailing slash)."""
        stripped = self.lms_path_prefix.strip().strip("/")
        return f"/{stripped}" if stripped else ""


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
