"""One typed settings object, read once from `ITSM_*` environment variables and `.env` (SPEC §9)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.errors import ConfigError

TOPIC_SUFFIXES = ("tickets", "changes", "config", "monitoring", "servicedesk", "feedback")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ITSM_", env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None, description="PostgreSQL URL; unset under `up` = embedded PostgreSQL"
    )
    kafka_bootstrap_servers: str | None = Field(
        default=None, description="Kafka bootstrap servers; unset under `up` = embedded broker"
    )
    catalog: Path | None = Field(default=None, description="service catalog YAML (SPEC §6.1)")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    api_header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        description="a request's headers must arrive within this after the connection opened "
        "or the previous answer was sent; else 408 and the connection is closed",
    )
    api_body_timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="a request's body must arrive within this after its headers (a 64 MiB "
        "batch needs ~9 Mbit/s); else 408 and the connection is closed",
    )
    ingest_ack_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="how long `POST /v1/events` waits for the broker's acknowledgements of a "
        "batch; then 503 with Retry-After, and the client posts it again",
    )
    ingest_token: str | None = None
    admin_token: str | None = None
    read_token: str | None = None
    manage_token: str | None = Field(
        default=None, description="bearer token for writing improvements (the admin token too)"
    )

    topic_prefix: str = "itsm."
    topic_partitions: int = 3
    consumer_group: str = "itsm-collector"
    max_event_bytes: int = 256 * 1024
    collector_batch_size: int = 2000
    collector_metrics_port: int | None = Field(
        default=None, description="port of the collector's own /metrics (unset = off)"
    )
    aggregator_metrics_port: int | None = None
    aggregator_interval_seconds: float = 2.0
    aggregator_refresh_seconds: float = Field(
        default=60.0, description="how often the current windows are recomputed as time passes"
    )
    aggregator_slow_seconds: float = Field(
        default=30.0,
        description="how often the costly parts of current windows are recomputed: states at "
        "the window's end (backlog), time shares (availability) and the exact percentiles of "
        "days, weeks, months and quarters",
    )
    aggregator_drift_seconds: float = Field(
        default=60.0,
        gt=0,
        description="how often drift is scored (SPEC §6.4): every series' last complete "
        "window against the windows before it; paced to a tenth of a core whatever the "
        "interval",
    )
    aggregator_fold_seconds: float = Field(
        default=5.0,
        gt=0,
        description="how often the running windows' pending differences are added to their "
        "points (readers see them at once either way; a fold waits, up to 30 s, while "
        "another transaction has been open for seconds)",
    )
    aggregator_work_mem_mb: int = Field(
        default=64,
        ge=1,
        le=4096,
        description="PostgreSQL work_mem of the aggregator's transactions: a million-ticket "
        "month's day recomputes in ~10 s at 64 MB and in minutes at the server's default 4 MB "
        "(its sorts spill); each statement's hash tables are sized up to it, so a small "
        "database computes faster with less",
    )
    hour_retention_days: float = Field(
        default=92.0,
        ge=3.0,
        description="hour windows older than this are not stored; queries compute them",
    )
    # The one owner of the reporting time zone (SPEC §5): windows stored are aligned in it, so
    # every process reads the same value; changing it is a deployment decision followed by
    # `itsm-metrics recompute --since`. A catalog's `reporting_timezone` may only repeat it.
    reporting_timezone: str = Field(
        default="UTC", description="IANA time zone windows are aligned in, for every process"
    )
    read_cache_seconds: float = Field(
        default=1.0,
        ge=0,
        description="an indicator answer is served again without looking at the database for "
        "this long (then revalidated against the stored rows); 0: every request looks",
    )
    metrics_max_series: int = Field(
        default=50_000,
        ge=0,
        description="series budget of /metrics for indicator values, applied when the "
        "aggregator renders its snapshot: the most important kept, the rest counted in "
        "itsm_exposition_series_dropped (every grouping stays over HTTP)",
    )
    exposition_interval_seconds: float = Field(
        default=15.0,
        gt=0,
        description="how often the aggregator renders the /metrics snapshot of indicator "
        "values, objectives and drift that the api serves",
    )
    exposition_stale_seconds: float = Field(
        default=120.0,
        gt=0,
        description="the api serves no indicator, objective or drift series when the snapshot "
        "is older than this (itsm_exposition_stale 1); must exceed the interval",
    )

    data_dir: Path = Path(".itsm")
    local_postgres_port: int | None = Field(default=None, description="embedded PostgreSQL port")
    local_kafka_port: int | None = Field(default=None, description="embedded broker port")

    log_level: str = "INFO"
    log_format: Literal["console", "json"] = "console"

    @model_validator(mode="after")
    def _stale_after_the_interval(self) -> Settings:
        # A snapshot is renewed every interval: a threshold under it would flap to stale.
        if self.exposition_stale_seconds <= self.exposition_interval_seconds:
            raise ValueError(
                "ITSM_EXPOSITION_STALE_SECONDS must exceed ITSM_EXPOSITION_INTERVAL_SECONDS"
            )
        return self

    @field_validator("database_url")
    @classmethod
    def _psycopg_driver(cls, url: str | None) -> str | None:
        # Accept the usual libpq spellings; SQLAlchemy must use psycopg 3.
        if url is None or url == "":
            return None
        for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        raise ValueError("ITSM_DATABASE_URL must start with postgresql://")

    @field_validator("reporting_timezone")
    @classmethod
    def _known_zone(cls, zone: str) -> str:
        try:
            ZoneInfo(zone)
        except (ValueError, ZoneInfoNotFoundError):
            raise ValueError(
                f"ITSM_REPORTING_TIMEZONE {zone!r} is not an IANA time zone (e.g. Europe/Berlin)"
            ) from None
        return zone

    def topic(self, suffix: str) -> str:
        return f"{self.topic_prefix}{suffix}"

    @property
    def event_topics(self) -> list[str]:
        return [self.topic(s) for s in TOPIC_SUFFIXES]

    @property
    def deadletter_topic(self) -> str:
        return self.topic("deadletter")

    def require_database_url(self) -> str:
        if not self.database_url:
            raise ConfigError(
                "ITSM_DATABASE_URL is not set: set it to your PostgreSQL, "
                "or run `itsm-metrics up` to use the embedded engines"
            )
        return self.database_url

    def require_kafka(self) -> str:
        if not self.kafka_bootstrap_servers:
            raise ConfigError(
                "ITSM_KAFKA_BOOTSTRAP_SERVERS is not set: set it to your Kafka brokers, "
                "or run `itsm-metrics up` to use the embedded engines"
            )
        return self.kafka_bootstrap_servers


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    try:
        return Settings()
    except ValueError as err:  # pydantic's ValidationError is a ValueError
        first = str(err).splitlines()
        raise ConfigError(f"invalid settings: {' '.join(first[:3])}") from None
