"""`itsm-metrics`: one command per part (SPEC §9). Errors a user can fix print one line and exit
with the error's code; nothing here prints a traceback for them."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shared import logging as itsm_logging
from shared.errors import (
    BrokerUnavailable,
    ConfigError,
    InvalidRequest,
    ItsmError,
    NotFound,
    PortInUse,
)
from shared.settings import Settings, get_settings
from shared.signals import ignore_stop_signals, stop_on_signals
from shared.windows import WINDOW_KINDS

if TYPE_CHECKING:
    from collections.abc import Iterable

    from services.collector.dead_letters import ReplayReport
    from services.replay import Line, Pacer, Reporter

log = logging.getLogger("itsm.cli")


def _engine(settings: Settings, *, pool_size: int = 5) -> Any:
    from shared.db import check_migrated, make_engine

    engine = make_engine(settings.require_database_url(), pool_size=pool_size)
    check_migrated(engine)
    return engine


def _metrics_port(port: int | None, what: str, env_var: str) -> None:
    if port is None:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(port, addr="0.0.0.0")
    except OSError:
        raise PortInUse(f"port {port} for the {what} metrics is in use: set {env_var}") from None
    log.info("metrics listening", extra={"port": port, "service": what})


def cmd_migrate(settings: Settings, _args: argparse.Namespace) -> None:
    from shared.db import migrate

    before, after = migrate(settings.require_database_url())
    if before == after:
        print(f"database already at {after}")
    else:
        print(f"database migrated from {before or 'empty'} to {after}")


def cmd_collector(settings: Settings, _args: argparse.Namespace) -> None:
    from services.collector.consumer import Collector
    from shared.kafka import ensure_topics

    engine = _engine(settings)
    ensure_topics(settings)  # also checks the broker is reachable
    _metrics_port(settings.collector_metrics_port, "collector", "ITSM_COLLECTOR_METRICS_PORT")
    collector = Collector(settings, engine)
    stop = stop_on_signals()

    def relay() -> None:
        stop.wait()
        collector.stop_event.set()

    threading.Thread(target=relay, daemon=True).start()
    collector.run()


def cmd_aggregator(settings: Settings, _args: argparse.Namespace) -> None:
    from services.aggregator.jobs import Aggregator
    from services.api.improvements.service import verifier

    engine = _engine(settings)
    _metrics_port(settings.aggregator_metrics_port, "aggregator", "ITSM_AGGREGATOR_METRICS_PORT")
    if settings.catalog is not None:
        _apply_catalog_at_startup(engine, settings.catalog, settings.reporting_timezone)
    _check_catalog_timezone(engine, settings.reporting_timezone)
    # The improvements' verification reads indicators as the api does: wired in here, so the
    # aggregator never imports the api.
    Aggregator(settings, engine, verify_improvements=verifier(settings)).run(stop_on_signals())


def _apply_catalog_at_startup(engine: Any, path: Path, timezone: str) -> None:
    """SPEC §6.1: the catalog named by ITSM_CATALOG is loaded at startup. An invalid file (one
    whose reporting_timezone contradicts ITSM_REPORTING_TIMEZONE too) is refused with its line and
    reason, and the previous version stays active."""
    from services.catalog import CatalogError, active_version, apply_catalog, read_catalog_text

    try:
        with engine.begin() as conn:
            text = read_catalog_text(path)
            _, changed = apply_catalog(conn, text, str(path), timezone=timezone)
            version = active_version(conn)
    except CatalogError as err:
        log.error(
            "catalog refused, the previous one stays active",
            extra={"catalog": str(path), "reason": err.message},
        )
        return
    log.info(
        "catalog applied" if changed else "catalog already active",
        extra={"catalog": str(path), "version": version.id if version else None},
    )


def _check_catalog_timezone(engine: Any, timezone: str) -> None:
    """The active catalog may name another reporting time zone than ITSM_REPORTING_TIMEZONE
    (applied before the two were checked against each other). The setting is used all the same:
    an error at every start, not a refusal to start, so a stored catalog never stops a running
    installation; `catalog apply` of a fixed file clears it."""
    from services.catalog import CatalogError, active_catalog, timezone_mismatch

    try:
        with engine.connect() as conn:
            catalog = active_catalog(conn)
    except CatalogError:
        return  # reported wherever the catalog is read
    reason = timezone_mismatch(catalog, timezone)
    if reason is not None:
        log.error(
            "the active catalog's reporting_timezone is ignored",
            extra={"reporting_timezone": timezone, "reason": reason},
        )


def cmd_api(settings: Settings, _args: argparse.Namespace) -> None:
    from services.api.app import create_app
    from services.api.server import serve
    from services.local.engines import require_free_port
    from shared.kafka import check_reachable

    engine = _engine(settings, pool_size=10)
    check_reachable(settings.require_kafka())
    if settings.api_host in ("127.0.0.1", "0.0.0.0", "localhost"):
        require_free_port(settings.api_port, "api", "ITSM_API_PORT")
    _check_catalog_timezone(engine, settings.reporting_timezone)
    app = create_app(settings, engine)
    log.info("api listening", extra={"url": f"http://{settings.api_host}:{settings.api_port}"})
    # uvicorn shuts down gracefully, then re-raises the signal it caught to the handler that was
    # installed before it: make that a no-op so a clean SIGTERM stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    serve(
        app,
        settings.api_host,
        settings.api_port,
        header_timeout=settings.api_header_timeout_seconds,
        body_timeout=settings.api_body_timeout_seconds,
    )


def cmd_recompute(settings: Settings, args: argparse.Namespace) -> None:
    from services.aggregator.jobs import Aggregator

    since = datetime.fromisoformat(args.since)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    Aggregator(settings, _engine(settings)).mark_since(since)
    print(f"every window since {since.isoformat()} is marked for recomputation")


def cmd_windows_status(settings: Settings, _args: argparse.Namespace) -> None:
    from services.aggregator import queue

    with _engine(settings).connect() as conn:
        state = queue.state(conn, datetime.now(UTC))
        sizes = conn.execute(queue.POINTS_PER_KIND).all()
    oldest = state.oldest_due.astimezone(UTC).isoformat() if state.oldest_due else "-"
    print(
        f"waiting {state.waiting}  due now {state.due}  parked {state.parked}  oldest due {oldest}"
    )
    columns = ("window", "windows", "points", "points per window (mean)", "max")
    rows = [
        (r.window_kind, str(r.windows), str(r.points), f"{r.mean:.0f}", str(r.max)) for r in sizes
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


def cmd_windows_parked(settings: Settings, args: argparse.Namespace) -> None:
    from services.aggregator import queue

    with _engine(settings).connect() as conn:
        parked = queue.parked(conn, args.limit)
    if not parked:
        print("no parked windows")
        return
    columns = ("window", "start", "lane", "attempts", "parked", "error")
    rows = [
        (
            p.kind,
            p.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            p.lane,
            str(p.attempts),
            p.parked_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            _cell(p.error, 100),
        )
        for p in parked
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    print("after a fix: itsm-metrics windows retry --all")


def cmd_windows_retry(settings: Settings, args: argparse.Namespace) -> None:
    from services.aggregator import queue

    if not args.all and args.kind is None:
        raise InvalidRequest("name the windows to retry: --all, or --kind KIND [--start ISO]")
    with _engine(settings).begin() as conn:
        n = queue.retry(conn, datetime.now(UTC), args.kind, args.start)
    print(f"{n} parked window{'s' if n != 1 else ''} queued again")


def _timestamp(value: str) -> datetime:
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO date or timestamp, e.g. 2026-10-01T00:00:00Z"
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _cell(value: object, width: int | None = None) -> str:
    # Dead letters are untrusted input: no control characters (terminal escapes) reach the tty.
    text = "".join(c if c.isprintable() else "?" for c in str("" if value is None else value))
    if width is not None and len(text) > width:
        text = text[: width - 1] + "…"
    return text


def cmd_dead_letters_list(settings: Settings, args: argparse.Namespace) -> None:
    from services.collector import dead_letters

    with _engine(settings).connect() as conn:
        page = dead_letters.list_dead_letters(
            conn,
            limit=args.limit,
            before_id=args.before_id,
            replayed=args.replayed,
            reason_contains=args.reason,
        )
    if not page.items:
        print("no dead letters")
        return
    columns = ("id", "received", "replayed", "topic", "type", "event id", "reason")
    rows = [
        (
            str(d.id),
            d.received_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ"),
            "yes" if d.replayed_at else "no",
            _cell(d.topic, 24),
            _cell(d.event_type, 28),
            _cell(d.event_id, 24),
            _cell(d.reason, 80),
        )
        for d in page.items
    ]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    for row in (columns, *rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if page.next_before_id is not None:
        print(f"more: itsm-metrics dead-letters list --before-id {page.next_before_id}")


def cmd_dead_letters_replay(settings: Settings, args: argparse.Namespace) -> None:
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    from services.collector import dead_letters
    from shared.kafka import check_reachable, producer_config

    engine = _engine(settings)
    selection = dead_letters.Selection(
        ids=tuple(args.id or ()), since=args.since, reason_contains=args.reason
    )
    with engine.connect() as conn:
        missing = dead_letters.missing_ids(conn, selection.ids)
        total = dead_letters.count_candidates(conn, selection)
    if missing:
        raise NotFound(f"no dead letter with id {', '.join(map(str, missing))}")
    producer = None
    if not args.dry_run:
        check_reachable(settings.require_kafka())
        try:
            producer = KafkaProducer(**producer_config(settings))
        except KafkaError as err:
            raise BrokerUnavailable(f"Kafka broker unavailable: {err}") from None
    verb = "would replay" if args.dry_run else "replayed"
    print(f"checking {total} dead letters against the current contract", file=sys.stderr)

    def progress(report: dead_letters.ReplayReport) -> None:
        print(
            f"  {report.checked}/{total} checked: {verb} {len(report.replayed)}, "
            f"still invalid {len(report.invalid)}",
            file=sys.stderr,
        )

    try:
        report = dead_letters.replay(
            engine,
            producer,
            settings,
            selection,
            dry_run=args.dry_run,
            force=args.force,
            on_batch=progress,
        )
    finally:
        if producer is not None:
            producer.close(timeout=5)
    _print_replay(report, verb, dry_run=args.dry_run)


def _print_replay(report: ReplayReport, verb: str, *, dry_run: bool, shown: int = 50) -> None:
    print(f"{verb} {len(report.replayed)}, still invalid {len(report.invalid)}")
    for r in report.replayed[:shown]:
        forced = "" if r.valid else "  (forced: still invalid, it lands as a new dead letter)"
        what = f"{_cell(r.event_type)} {_cell(r.event_id)}" if r.event_id else "unreadable event"
        print(f"  {verb} #{r.dead_letter_id} to {_cell(r.topic)}: {what}{forced}")
    for i in report.invalid[:shown]:
        print(f"  still invalid #{i.dead_letter_id}: {_cell(i.reason, 300)}")
    hidden = max(0, len(report.replayed) - shown) + max(0, len(report.invalid) - shown)
    if hidden:
        print(f"  … and {hidden} more")
    if dry_run:
        print("dry run: nothing produced or marked")


def _simulate_to_file(args: argparse.Namespace, catalog: Any) -> None:
    """`simulate --out FILE`: the simulated company's last `--history` weeks (at the history
    pace) and `--duration` seconds (at `--rate`; default an hour without --history, else none)
    up to now, as JSON Lines of CloudEvents, at once; `-` for standard output."""
    from services.local.simulate import WEEK_SECONDS, past_events, write_simulation

    history = args.history * WEEK_SECONDS
    seconds = args.duration if args.duration is not None else 0.0 if history else 3600.0
    if seconds < 0 or (seconds == 0 and not history):
        raise InvalidRequest("--duration must be positive")
    events = past_events(
        rate=args.rate, seconds=seconds, seed=args.seed, catalog=catalog, history=history
    )
    if str(args.out) == "-":
        n = write_simulation(sys.stdout, events)
    else:
        with args.out.open("w", encoding="utf-8") as fh:
            n = write_simulation(fh, events)
    spans = ([f"{args.history:g} weeks"] if history else []) + (
        [f"{seconds:g} s"] if seconds else []
    )
    what = " and ".join(spans)
    print(f"{n} events of the last {what} written to {args.out}", file=sys.stderr)


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> None:
    from services.catalog import load_catalog
    from services.local.simulate import WEEK_SECONDS, run_simulation

    path = args.catalog or settings.catalog  # `up` names its catalog in ITSM_CATALOG
    catalog = load_catalog(path, timezone=settings.reporting_timezone) if path else None
    if args.out is not None:
        _simulate_to_file(args, catalog)
        return
    run_simulation(
        settings,
        rate=args.rate,
        duration=args.duration,
        seed=args.seed,
        catalog=catalog,
        stop=stop_on_signals(),
        history=args.history * WEEK_SECONDS,
    )


def cmd_replay(settings: Settings, args: argparse.Namespace) -> None:
    from services import replay

    if args.via == "http" and not (args.token or settings.ingest_token):
        raise ConfigError("--via http needs the ingest token: --token or ITSM_INGEST_TOKEN")
    # Under a rate limit a batch holds about a second of events, so they flow evenly.
    batch_size = min(args.batch_size, max(1, int(args.rate))) if args.rate else args.batch_size
    reporter = replay.Reporter(sys.stderr)
    pacer = replay.Pacer(args.rate)
    with replay.open_input(args.file) as stream:
        lines = replay.read_lines(stream)
        try:
            if args.via == "kafka":
                _replay_kafka(settings, lines, reporter, batch_size, pacer)
            else:
                _replay_http(settings, args, lines, reporter, batch_size, pacer)
        except (OSError, EOFError) as err:  # a truncated gzip stream, an unreadable file
            where = f"{args.file} past line {reporter.summary.read}"
            raise ConfigError(f"cannot read {where}: {err}") from None
        except ItsmError:
            # Where it stopped, so a user can resume (duplicates of what was sent are dropped).
            if reporter.summary.read:
                print(f"replay stopped: {reporter.summary.text()}", file=sys.stderr)
            raise
    summary = reporter.summary
    target = "Kafka" if args.via == "kafka" else "the api"
    print(f"replay of {args.file} to {target}: {summary.text()}")
    if summary.refused:
        raise replay.LinesRefused(f"{summary.refused} of {summary.read} lines refused (see above)")


def _replay_kafka(
    settings: Settings, lines: Iterable[Line], reporter: Reporter, batch_size: int, pacer: Pacer
) -> None:
    from services import replay
    from shared.kafka import Publisher, check_reachable

    check_reachable(settings.require_kafka())
    publisher = Publisher(settings)
    try:
        replay.replay_kafka(
            lines, publisher.publish, settings, reporter, batch_size=batch_size, pacer=pacer
        )
    finally:
        publisher.close()


def _replay_http(
    settings: Settings,
    args: argparse.Namespace,
    lines: Iterable[Line],
    reporter: Reporter,
    batch_size: int,
    pacer: Pacer,
) -> None:
    import httpx

    from services import replay

    url = args.url or f"http://localhost:{settings.api_port}"
    token = args.token or settings.ingest_token
    with httpx.Client(headers={"authorization": f"Bearer {token}"}, timeout=120) as client:
        replay.replay_http(lines, client, url, reporter, batch_size=batch_size, pacer=pacer)


def _batch_size(value: str) -> int:
    from shared.kafka import MAX_BATCH

    n = int(value)
    if not 1 <= n <= MAX_BATCH:
        raise argparse.ArgumentTypeError(f"between 1 and {MAX_BATCH} (the api's largest batch)")
    return n


def _weeks(value: str) -> float:
    weeks = float(value)
    if weeks < 0:
        raise argparse.ArgumentTypeError("0 (none) or more weeks")
    return weeks


def _replay_parser(sub: Any) -> None:
    rp = sub.add_parser(
        "replay",
        help="send a JSON Lines file of CloudEvents (gzip accepted) to Kafka or the api",
        description=(
            "Read CloudEvents, one JSON object per line, from FILE or standard input (-), "
            "gzip-compressed or not, and produce each valid one to its topic keyed by its entity "
            "(--via kafka) or POST them in batches to /v1/events (--via http). A bad line is "
            "reported as 'line N: reason' on stderr and never stops the file; duplicates are "
            "dropped by the collector. Exit 0: every line sent; 1: some lines refused; "
            "2: usage error or api unreachable; 5: Kafka unreachable."
        ),
    )
    rp.add_argument("file", metavar="FILE", help="JSON Lines of CloudEvents, - for stdin")
    rp.add_argument("--via", choices=("kafka", "http"), default="kafka", help="default: kafka")
    rp.add_argument(
        "--url", default=None, help="the api's base URL (default http://localhost:ITSM_API_PORT)"
    )
    rp.add_argument("--token", default=None, help="ingest token (default: ITSM_INGEST_TOKEN)")
    rp.add_argument(
        "--batch-size", type=_batch_size, default=500, help="events per request (default 500)"
    )
    rp.add_argument(
        "--rate", type=float, default=None, help="at most N events per second (default: no limit)"
    )
    rp.set_defaults(fn=cmd_replay)


def cmd_catalog_check(settings: Settings, args: argparse.Namespace) -> None:
    from services.catalog import CatalogError, load_catalog

    try:
        catalog = load_catalog(args.file, timezone=settings.reporting_timezone)
    except CatalogError as err:
        # Every problem, one per line as FILE:LINE: reason (editors jump to them).
        for problem in err.details or [err.message]:
            print(problem, file=sys.stderr)
        sys.exit(err.exit_code)
    print(f"catalog {args.file} is valid ({catalog.summary()})")


def cmd_catalog_apply(settings: Settings, args: argparse.Namespace) -> None:
    from services.catalog import active_version, apply_catalog, parse_catalog, read_catalog_text

    text = read_catalog_text(args.file)
    zone = settings.reporting_timezone
    # a broken file is reported before the database is asked
    parse_catalog(text, str(args.file), timezone=zone)
    with _engine(settings).begin() as conn:
        catalog, changed = apply_catalog(conn, text, str(args.file.resolve()), timezone=zone)
        version = active_version(conn)
    assert version is not None
    state = "applied" if changed else "already active"
    print(f"catalog {args.file} {state} (version {version.id}: {catalog.summary()})")


def cmd_catalog_show(settings: Settings, _args: argparse.Namespace) -> None:
    from services.catalog import active_catalog, active_version, timezone_mismatch

    with _engine(settings).connect() as conn:
        version = active_version(conn)
        catalog = active_catalog(conn)
    if version is None:
        print("no catalog applied: the built-in default is active (calendar 24x7, no services)")
        print(f"  time zone  {_zone_source(settings)}")
        return
    applied = version.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    print(f"catalog version {version.id}, applied {applied}")
    print(f"  source     {version.source}")
    print(f"  sha256     {version.sha256}")
    print(f"  time zone  {_zone_source(settings)}")
    if timezone_mismatch(catalog, settings.reporting_timezone) is not None:
        print(
            f"             the catalog's reporting_timezone {catalog.reporting_timezone} is "
            "ignored: remove it and apply the catalog again"
        )
    counts = (
        ("customers", catalog.customers),
        ("services", catalog.services),
        ("calendars", catalog.calendars),
        ("policies", catalog.sla_policies),
        ("objectives", catalog.objectives),
        ("measurements", catalog.measurements),
    )
    for name, items in counts:
        print(f"  {name:<10} {len(items)}")


def _zone_source(settings: Settings) -> str:
    """The reporting time zone in force and where it comes from (the setting owns it)."""
    zone = settings.reporting_timezone
    if "reporting_timezone" in settings.model_fields_set:
        return f"{zone} (ITSM_REPORTING_TIMEZONE)"
    return f"{zone} (the default; ITSM_REPORTING_TIMEZONE sets it)"


def cmd_catalog_history(settings: Settings, args: argparse.Namespace) -> None:
    from services.catalog import catalog_history

    with _engine(settings).connect() as conn:
        versions = catalog_history(conn, limit=args.limit)
    if not versions:
        print("no catalog applied")
    for v in versions:
        applied = v.applied_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        mark = "active" if v.active else "      "
        print(f"{v.id:>5}  {mark}  {applied}  {v.sha256[:12]}  {_cell(v.source)}")


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    from services.local.stack import run_stack

    sys.exit(
        run_stack(
            settings,
            simulate=args.simulate,
            rate=args.rate,
            catalog=args.catalog,
            history=args.history,
            seed=args.seed,
        )
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itsm-metrics",
        description="Event-driven ITSM metrics: collector, aggregator, api, and a local stack.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("migrate", help="run database migrations to head").set_defaults(fn=cmd_migrate)
    sub.add_parser("collector", help="consume events into PostgreSQL").set_defaults(
        fn=cmd_collector
    )
    sub.add_parser("aggregator", help="compute indicators").set_defaults(fn=cmd_aggregator)
    sub.add_parser("api", help="serve the HTTP API and /metrics").set_defaults(fn=cmd_api)
    rec = sub.add_parser("recompute", help="recompute every window since a date")
    rec.add_argument("--since", required=True, help="ISO date or timestamp, e.g. 2026-01-01")
    rec.set_defaults(fn=cmd_recompute)
    _dead_letter_parsers(sub)
    _window_parsers(sub)
    _catalog_parsers(sub)
    _replay_parser(sub)
    sim = sub.add_parser("simulate", help="produce a simulated ITSM event stream to Kafka")
    sim.add_argument("--rate", type=float, default=5.0, help="tickets opened per second")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.add_argument("--seed", type=int, default=None)
    sim.add_argument(
        "--history",
        type=_weeks,
        default=0.0,
        metavar="WEEKS",
        help="first produce the last WEEKS weeks at once, at a quieter realistic pace "
        "(~150 tickets a day), then go on live (default 0: none)",
    )
    sim.add_argument(
        "--catalog",
        type=Path,
        default=None,
        help="the company's customers, services and SLA policies (default: ITSM_CATALOG)",
    )
    sim.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="write the last --duration seconds (default 3600) as JSON Lines of CloudEvents "
        "instead of producing ('-': standard output); load them with `itsm-metrics replay`",
    )
    sim.set_defaults(fn=cmd_simulate)
    up = sub.add_parser("up", help="run the whole stack (embedded engines unless configured)")
    up.add_argument(
        "--simulate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed simulated events (default: on)",
    )
    up.add_argument("--rate", type=float, default=2.0, help="simulated tickets per second")
    up.add_argument(
        "--history",
        type=_weeks,
        default=8.0,
        metavar="WEEKS",
        help="weeks of simulated history at the first start, on a database without events "
        "(default 8; 0: none)",
    )
    up.add_argument("--seed", type=int, default=None, help="seed of the simulation")
    up.add_argument("--catalog", type=Path, default=None, help="service catalog YAML")
    up.set_defaults(fn=cmd_up)
    return parser


def _catalog_parsers(sub: Any) -> None:
    cat = sub.add_parser("catalog", help="check, apply and show the service catalog (SPEC §6.1)")
    csub = cat.add_subparsers(dest="catalog_command", required=True, metavar="ACTION")
    check = csub.add_parser("check", help="validate a catalog file (no database needed)")
    check.add_argument("file", type=Path, metavar="FILE")
    check.set_defaults(fn=cmd_catalog_check)
    apply = csub.add_parser(
        "apply",
        help="validate a catalog file and make it the active version",
        description="Validate FILE and store it as the active catalog version, which every "
        "service reads. An invalid file changes nothing: the previous version stays active.",
    )
    apply.add_argument("file", type=Path, metavar="FILE")
    apply.set_defaults(fn=cmd_catalog_apply)
    csub.add_parser("show", help="the active catalog version").set_defaults(fn=cmd_catalog_show)
    history = csub.add_parser("history", help="applied catalog versions, newest first")
    history.add_argument("--limit", type=int, default=20, help="how many (default 20)")
    history.set_defaults(fn=cmd_catalog_history)


def _window_parsers(sub: Any) -> None:
    win = sub.add_parser(
        "windows", help="the aggregator's queue: status, parked windows, retry (issue 10)"
    )
    wsub = win.add_subparsers(dest="windows_command", required=True, metavar="ACTION")
    wsub.add_parser(
        "status", help="windows waiting, due and parked; points stored per window kind"
    ).set_defaults(fn=cmd_windows_status)
    pk = wsub.add_parser("parked", help="windows whose recomputation failed repeatedly")
    pk.add_argument("--limit", type=int, default=100, help="how many (default 100)")
    pk.set_defaults(fn=cmd_windows_parked)
    rt = wsub.add_parser(
        "retry",
        help="queue parked windows again (after fixing what made them fail)",
    )
    rt.add_argument("--all", action="store_true", help="every parked window")
    rt.add_argument("--kind", choices=WINDOW_KINDS, default=None)
    rt.add_argument("--start", type=_timestamp, default=None, help="the window's start (ISO)")
    rt.set_defaults(fn=cmd_windows_retry)


def _dead_letter_parsers(sub: Any) -> None:
    dl = sub.add_parser("dead-letters", help="list and replay refused events (SPEC §3.6)")
    dsub = dl.add_subparsers(dest="dead_letters_command", required=True, metavar="ACTION")
    ls = dsub.add_parser("list", help="the newest dead letters as a table")
    ls.add_argument("--limit", type=int, default=50, help="how many (default 50)")
    ls.add_argument("--reason", default=None, help="only reasons containing TEXT")
    ls.add_argument("--before-id", type=int, default=None, help="only ids below N (next page)")
    ls.add_argument(
        "--replayed",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="only replayed ones (--no-replayed: only the others)",
    )
    ls.set_defaults(fn=cmd_dead_letters_list)
    rp = dsub.add_parser(
        "replay",
        help="re-validate and produce again the ones the current contract accepts",
        description=(
            "Re-validate each dead letter with the current event contract and produce the ones "
            "that pass back to their original topic (acks=all), then mark them replayed. "
            "Ones that still fail stay unreplayed and are listed with their current reason. "
            "Without --id: every dead letter not yet replayed."
        ),
    )
    rp.add_argument("--id", type=int, action="append", help="replay this dead letter (repeatable)")
    rp.add_argument("--since", type=_timestamp, default=None, help="received at or after (ISO)")
    rp.add_argument("--reason", default=None, help="only reasons containing TEXT")
    rp.add_argument(
        "--dry-run", action="store_true", help="report what would happen, produce nothing"
    )
    rp.add_argument(
        "--force",
        action="store_true",
        help="also produce still-invalid ones to their original topic: each then lands as a new "
        "dead letter (the old one is marked replayed)",
    )
    rp.set_defaults(fn=cmd_dead_letters_replay)


def _exit_quietly(signum: int, _frame: Any) -> None:
    # Until a command installs its own graceful handler, a stop request ends the process
    # cleanly (exit 0), also while it is still starting.
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    signal.signal(signal.SIGTERM, _exit_quietly)
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        itsm_logging.configure(settings.log_level, settings.log_format)
        args.fn(settings, args)
        ignore_stop_signals()  # done: a late stop signal must not turn exit 0 into a kill
    except ItsmError as err:
        print(f"itsm-metrics: {err.message}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
