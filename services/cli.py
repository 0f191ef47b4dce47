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
from typing import Any

from shared import logging as itsm_logging
from shared.errors import ItsmError, PortInUse
from shared.settings import Settings, get_settings

log = logging.getLogger("itsm.cli")


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: Any) -> None:
        log.info("stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


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
    stop = _stop_on_signals()
    threading.Thread(target=lambda: (stop.wait(), collector.stop_event.set()), daemon=True).start()
    collector.run()


def cmd_aggregator(settings: Settings, _args: argparse.Namespace) -> None:
    from services.aggregator.jobs import Aggregator

    engine = _engine(settings)
    _metrics_port(settings.aggregator_metrics_port, "aggregator", "ITSM_AGGREGATOR_METRICS_PORT")
    Aggregator(settings, engine).run(_stop_on_signals())


def cmd_api(settings: Settings, _args: argparse.Namespace) -> None:
    import uvicorn

    from services.api.app import create_app
    from services.local.engines import require_free_port
    from shared.kafka import check_reachable

    engine = _engine(settings, pool_size=10)
    check_reachable(settings.require_kafka())
    if settings.api_host in ("127.0.0.1", "0.0.0.0", "localhost"):
        require_free_port(settings.api_port, "api", "ITSM_API_PORT")
    app = create_app(settings, engine)
    log.info("api listening", extra={"url": f"http://{settings.api_host}:{settings.api_port}"})
    # uvicorn shuts down gracefully, then re-raises the signal it caught to the handler that was
    # installed before it: make that a no-op so a clean SIGTERM stop exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(
        app, host=settings.api_host, port=settings.api_port, log_level="warning", access_log=False
    )


def cmd_recompute(settings: Settings, args: argparse.Namespace) -> None:
    from services.aggregator.jobs import Aggregator

    since = datetime.fromisoformat(args.since)
    if since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    marked = Aggregator(settings, _engine(settings)).mark_since(since)
    print(f"marked {marked} windows since {since.isoformat()} for recomputation")


def cmd_simulate(settings: Settings, args: argparse.Namespace) -> None:
    from services.local.simulate import run_simulation

    run_simulation(
        settings, rate=args.rate, duration=args.duration, seed=args.seed, stop=_stop_on_signals()
    )


def cmd_up(settings: Settings, args: argparse.Namespace) -> None:
    from services.local.stack import run_stack

    sys.exit(run_stack(settings, simulate=args.simulate, rate=args.rate, catalog=args.catalog))


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
    sim = sub.add_parser("simulate", help="produce a simulated ITSM event stream to Kafka")
    sim.add_argument("--rate", type=float, default=5.0, help="tickets opened per second")
    sim.add_argument("--duration", type=float, default=None, help="seconds (default: forever)")
    sim.add_argument("--seed", type=int, default=None)
    sim.set_defaults(fn=cmd_simulate)
    up = sub.add_parser("up", help="run the whole stack (embedded engines unless configured)")
    up.add_argument(
        "--simulate",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="feed simulated events (default: on)",
    )
    up.add_argument("--rate", type=float, default=2.0, help="simulated tickets per second")
    up.add_argument("--catalog", type=Path, default=None, help="service catalog YAML")
    up.set_defaults(fn=cmd_up)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        settings = get_settings()
        itsm_logging.configure(settings.log_level, settings.log_format)
        args.fn(settings, args)
    except ItsmError as err:
        print(f"itsm-metrics: {err.message}", file=sys.stderr)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
