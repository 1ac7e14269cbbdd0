"""Settings, all from `VILTBRIDGE_*` environment variables (or a `.env` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field
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
    key_file: Path = Path("viltbridge.key")
    public_url: str | None = Field(default=None, description="External base URL used in launch links")
    lms_path_prefix: str = Field(default="/", description="Where the Cornerstone contract is mounted")
    max_body_bytes: int = 1_000_000
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
    log_level: str = "INFO"
    log_json: bool = False

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
