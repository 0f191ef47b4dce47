"""The tables (SQLAlchemy Core metadata, the source Alembic migrations are checked against) and
engine helpers. The schema itself is created only by migrations (`itsm-metrics migrate`)."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from shared.errors import DatabaseUnavailable, NotMigrated

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ts(name: str, **kw: object) -> Column[object]:
    return Column(name, DateTime(timezone=True), **kw)  # type: ignore[arg-type]


# Raw event store: every accepted event once, keyed by (source, id) — SPEC §3, §4.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=True),
    Column("source", Text, nullable=False),
    Column("id", Text, nullable=False),
    Column("type", Text, nullable=False),
    _ts("time", nullable=False),
    Column("subject", Text),
    Column("entity_kind", Text, nullable=False),
    Column("entity_id", Text, nullable=False),
    Column("sequence", BigInteger),
    Column("data", JSONB, nullable=False),
    Column("topic", Text),
    Column("partition", Integer),
    Column("offset", BigInteger),
    _ts("received_at", nullable=False, server_default=func.now()),
    UniqueConstraint("source", "id"),
    Index(None, "entity_kind", "entity_id"),
)

# Dead letters: bad input kept with its reason and raw bytes — SPEC §3.6.
dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    _ts("received_at", nullable=False, server_default=func.now()),
    Column("reason", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    Column("topic", Text),
    Column("partition", Integer),
    Column("offset", BigInteger),
    Column("event_source", Text),
    Column("event_id", Text),
    Column("event_type", Text),
    _ts("replayed_at"),
    # A message redelivered after a crash must not be dead-lettered twice.
    UniqueConstraint("topic", "partition", "offset"),
)

# Ticket projection: the current state of each ticket, derived facts included — SPEC §3.1.
tickets = Table(
    "tickets",
    metadata,
    Column("ticket_id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("state", Text, nullable=False),
    Column("service", Text),
    Column("priority", SmallInteger),
    Column("impact", SmallInteger),
    Column("urgency", SmallInteger),
    Column("channel", Text),
    Column("assignment_group", Text),
    Column("assignee", Text),
    Column("ci_ids", ARRAY(Text), nullable=False, server_default="{}"),
    _ts("opened_at", nullable=False),
    _ts("responded_at"),
    _ts("resolved_at"),
    _ts("closed_at"),
    Column("major", Boolean, nullable=False, server_default="false"),
    Column("problem_id", Text),
    Column("caused_by_change_id", Text),
    Column("knowledge_article_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("reassignments", Integer, nullable=False, server_default="0"),
    Column("reopens", Integer, nullable=False, server_default="0"),
    Column("paused_seconds", Float, nullable=False, server_default="0"),
    Column("first_contact_resolution", Boolean),
    Column("sequence", BigInteger),
    _ts("last_event_time", nullable=False),
    Column("event_count", Integer, nullable=False),
    Column("snapshot", JSONB, nullable=False),
    _ts("updated_at", nullable=False, server_default=func.now()),
    Index(None, "opened_at"),
    Index(None, "resolved_at"),
)

# Windows whose indicators must be recomputed. Append-only marks: collectors never block on the
# aggregator, which claims marks with SKIP LOCKED and deletes exactly the ones it read.
dirty_windows = Table(
    "dirty_windows",
    metadata,
    Column("id", BigInteger, primary_key=True, autoincrement=True),
    Column("scope", Text, nullable=False),
    Column("window_kind", Text, nullable=False),
    _ts("window_start", nullable=False),
    _ts("marked_at", nullable=False, server_default=func.now()),
    # Earliest receipt time of an event behind this mark: event-to-indicator freshness.
    _ts("first_received_at", nullable=False),
    Index(None, "window_kind", "window_start"),
)

# Computed indicator points — SPEC §5. `dimensions` holds only the grouped dimensions; the
# all-dimensions total has `{}`. `dim_keys` (sorted, comma-joined names) selects a grouping.
indicator_values = Table(
    "indicator_values",
    metadata,
    Column("indicator", Text, primary_key=True),
    Column("window_kind", Text, primary_key=True),
    _ts("window_start", primary_key=True),
    Column("dimensions", JSONB, primary_key=True),
    _ts("window_end", nullable=False),
    Column("dim_keys", Text, nullable=False),
    Column("value", Float),
    Column("count", BigInteger, nullable=False),
    Column("p50", Float),
    Column("p90", Float),
    _ts("computed_at", nullable=False, server_default=func.now()),
    Index(None, "indicator", "window_kind", "dim_keys", "window_start"),
)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        connect_args={"connect_timeout": 5},
    )


def migrations_dir() -> Path:
    import migrations

    return Path(migrations.__file__).parent


def alembic_config(url: str) -> object:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("postgresql+psycopg://x/x"))  # type: ignore[arg-type]
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            exists = conn.execute(text("SELECT to_regclass('alembic_version')")).scalar()
            if exists is None:
                return None
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except OperationalError as err:
        raise DatabaseUnavailable(describe_db_error(engine, err)) from None


def describe_db_error(engine: Engine, err: Exception) -> str:
    reason = str(getattr(err, "orig", err)).strip().splitlines()[0]
    where = engine.url.render_as_string(hide_password=True)
    return (
        f"PostgreSQL unreachable at {where} ({reason}): "
        "check ITSM_DATABASE_URL and that the server is running"
    )


def check_migrated(engine: Engine) -> None:
    """Raise unless the database schema is at the migrations' head (SPEC §7.5, issue 4)."""
    current = current_revision(engine)
    head = head_revision()
    if current != head:
        state = "has no schema" if current is None else f"is at revision {current}"
        raise NotMigrated(
            f"database {state}, code expects {head}: run `itsm-metrics migrate` first"
        )


def migrate(url: str) -> tuple[str | None, str]:
    """Run migrations to head; returns (revision before, revision after)."""
    from alembic import command

    engine = make_engine(url, pool_size=1)
    try:
        before = current_revision(engine)
    finally:
        engine.dispose()
    command.upgrade(alembic_config(url), "head")  # type: ignore[arg-type]
    return before, head_revision()
