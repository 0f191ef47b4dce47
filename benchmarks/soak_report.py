"""The soak's figures and verdict, from what it recorded: each part returns its figures and the
failures it found (a failure is one line naming what went wrong); the verdict is "nothing
lost, nothing twice" when no part found any. Pure functions of the recorded facts."""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from benchmarks.freshness import Seen, end_to_end, quantile
from benchmarks.invariants import Recompute, Storage
from benchmarks.reads import Read

VERDICT_OK = "nothing lost, nothing twice"
# The phases of a run, in order: each begins at its mark (Timeline).
WARM_UP, FROZEN, THAWED = "warm-up", "broker frozen", "broker back"
PG_DOWN, PG_BACK, API_READY, DRAIN = (
    "postgres down",
    "postgres restarted",
    "api ready again",
    "drain",
)
Part = tuple[dict[str, Any], list[str]]  # (figures, failures)
# What a read is answered while PostgreSQL is away (services/api/errors.py).
UNAVAILABLE = "HTTP 503 database_unavailable"
# Reads that began this long after the api said ready again may still have met the outage.
READY_GRACE_S = 2.0


@dataclass
class Timeline:
    """The run's phases, each from the monotonic instant it began (in order)."""

    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, name: str, at: float) -> None:
        self.marks.append((name, at))

    def at(self, name: str) -> float | None:
        return next((t for n, t in self.marks if n == name), None)

    def phase(self, t: float) -> str:
        i = bisect.bisect_right([at for _, at in self.marks], t) - 1
        return self.marks[max(i, 0)][0]

    def window(self, begin: str, end: str) -> tuple[float, float] | None:
        """From the mark `begin` to the mark `end` (or on, if it never came)."""
        start = self.at(begin)
        if start is None:
            return None
        return start, self.at(end) or float("inf")

    def offsets(self) -> str:
        t0 = self.marks[0][1]
        return ", ".join(f"{name} at {at - t0:.0f} s" for name, at in self.marks[1:])


def verdict(failures: list[str]) -> str:
    return VERDICT_OK if not failures else "FAILED: " + "; ".join(failures)


def ingest_part(
    sent: dict[str, int],
    resent: dict[str, int],
    unacked: dict[str, int],
    statuses: Counter[int],
    http_trouble: dict[str, int],
    answers: list[str],
) -> Part:
    """What the two paths sent and how the api answered: 202, and 503 with Retry-After while
    the broker hangs, are the only answers a valid batch may get."""
    failures = []
    never = sum(unacked.values())
    if never:
        failures.append(f"{never} events never acknowledged by the end")
    odd = [f"{status} ×{n}" for status, n in statuses.items() if status not in (202, 503)]
    if odd:
        failures.append(f"ingest answered {', '.join(odd)}")
    if answers:
        failures.append(f"ingest: {len(answers)} unexpected answers, e.g. {answers[0]}")
    for what, n in http_trouble.items():
        if n:
            failures.append(f"ingest: {n} {what}")
    figures = {
        "events_over_kafka": sent["kafka"],
        "events_over_http": sent["http"],
        "events_resent": sum(resent.values()),
        "events_never_acknowledged": never,
        "ingest_posts": ", ".join(f"{s} ×{n}" for s, n in sorted(statuses.items())),
    }
    return figures, failures


def storage_part(
    storage: Storage, poison: int, dead: dict[str, int], collector: dict[str, float]
) -> Part:
    """Every event stored once; every poison message dead-lettered, and nothing else."""
    failures = storage.problems()
    if dead["poison"] != poison:
        failures.append(f"{dead['poison']} of {poison} poison messages dead-lettered")
    if dead["other"]:
        failures.append(f"{dead['other']} dead letters that are not the poison sent")
    figures = {
        "events_sent": storage.sent,
        "events_stored": storage.stored,
        "duplicates_stored": storage.doubled,
        "events_missing": storage.missing,
        "events_unexpected": storage.unexpected,
        "poison_sent": poison,
        "dead_letters": dead["rows"],
        "collector_counted": ", ".join(f"{k} {int(v):,}" for k, v in sorted(collector.items())),
    }
    return figures, failures


def lag_part(lag: list[tuple[float, int, int, int]], timeline: Timeline) -> Part:
    """The largest lag (events acknowledged and not stored) and when; and the most events the
    sources held unacknowledged (a hung broker: they wait at the sources, not in Kafka)."""
    if not lag:
        return {"max_lag_events": None}, ["no lag sample was taken"]
    t0 = timeline.marks[0][1]
    t, _, acked, stored = max(lag, key=lambda s: s[2] - s[3])
    held = max(lag, key=lambda s: s[1] - s[2])
    return {
        "max_lag_events": max(0, acked - stored),
        "max_lag_at": f"{t - t0:.0f} s ({timeline.phase(t)})",
        "max_held_by_sources": held[1] - held[2],
        "max_held_at": f"{held[0] - t0:.0f} s ({timeline.phase(held[0])})",
    }, []


def freshness_part(created: list[float], seen: Seen, timeline: Timeline) -> Part:
    """Creation to visible, overall and by the phase the creation was sent in."""
    latencies = end_to_end(created, seen)
    by_phase: dict[str, list[float]] = {}
    for sent_at, latency in zip(created, latencies, strict=False):
        by_phase.setdefault(timeline.phase(sent_at), []).append(latency)
    ordered = sorted(latencies)
    figures = {
        "freshness_p50_s": quantile(ordered, 0.5),
        "freshness_p99_s": quantile(ordered, 0.99),
        "freshness_max_s": ordered[-1] if ordered else None,
        "freshness_measured": f"{len(latencies):,} of {len(created):,} ticket creations",
        "freshness_by_phase": "; ".join(
            f"{phase} p50 {quantile(sorted(v), 0.5)} s p99 {quantile(sorted(v), 0.99)} s"
            for phase, v in by_phase.items()
        ),
    }
    failures = []
    if len(latencies) < len(created):
        failures.append(f"{len(created) - len(latencies)} ticket creations never visible")
    return figures, failures


def reads_part(reads: list[Read], seconds: float, timeline: Timeline) -> Part:
    """Latency of the answered reads (200), by kind of read, and every other answer: a 503
    while PostgreSQL is away (until the api said ready again) is expected, anything else is a
    failure, named with the first time it came."""
    outage = timeline.window(PG_DOWN, API_READY)
    faults = [w for w in (timeline.window(FROZEN, THAWED), outage) if w]
    ok, expected, unexpected = [], [], []
    for r in reads:
        if r.outcome == "HTTP 200":
            ok.append(r)
        elif r.outcome == UNAVAILABLE and outage and _during(r, [outage], READY_GRACE_S):
            expected.append(r)
        else:
            unexpected.append(r)
    by_kind: dict[str, list[float]] = {}
    for r in ok:
        by_kind.setdefault(_kind(r.path), []).append(r.seconds)
    latencies = sorted(r.seconds for r in ok)
    steady = sorted(r.seconds for r in ok if not _during(r, faults))
    others = Counter(r.outcome for r in unexpected)
    figures = {
        "reads": len(reads),
        "reads_per_s": round(len(reads) / seconds, 1),
        "read_p50_ms": _ms(quantile(latencies, 0.5)),
        "read_p99_ms": _ms(quantile(latencies, 0.99)),
        "read_p99_outside_faults_ms": _ms(quantile(steady, 0.99)),
        "read_p50_p99_ms_by_kind": "; ".join(
            f"{kind} {_ms(quantile(sorted(v), 0.5))}/{_ms(quantile(sorted(v), 0.99))}"
            for kind, v in sorted(by_kind.items())
        ),
        "reads_503_postgres_down": len(expected),
        "reads_5xx_otherwise": sum(n for o, n in others.items() if o.startswith("HTTP 5")),
        "reads_other_answers": ", ".join(f"{o} ×{n}" for o, n in others.most_common()) or "none",
    }
    t0 = timeline.marks[0][1]
    failures = []
    for outcome, n in others.most_common(5):
        first = min((r for r in unexpected if r.outcome == outcome), key=lambda r: r.started)
        when = f"{first.started - t0:.1f} s, {timeline.phase(first.started)}"
        failures.append(f"reads answered {outcome} ×{n} (first {_kind(first.path)} at {when})")
    return figures, failures


def _during(r: Read, windows: Iterable[tuple[float, float]], grace: float = 0.0) -> bool:
    """Whether the read overlapped one of the windows (extended by `grace` s)."""
    return any(r.started <= end + grace and r.started + r.seconds >= b for b, end in windows)


def _kind(path: str) -> str:
    """What a read asked: `/v1/indicators/x` → series, `/v1/tickets` → tickets, `/metrics`."""
    route = path.split("?")[0]
    return "series" if route.startswith("/v1/indicators/") else route.rsplit("/", 1)[-1]


def memory_part(peak_mb: dict[str, float], postgres_kb: int) -> Part:
    """Peak RSS per service (VmHWM), the broker's, the soak's own and its heaviest reader's;
    PostgreSQL's as the PSS of all its processes together (shared buffers counted once)."""
    named = {"collector": "collector", "aggregator": "aggregator", "api": "api", "soak": "soak"}
    figures: dict[str, Any] = {}
    for name, mb in sorted(peak_mb.items()):
        key = named.get(name, "broker" if name.startswith("tansu") else "reader")
        figures[f"peak_rss_{key}_mb"] = max(mb, figures.get(f"peak_rss_{key}_mb", 0.0))
    figures["peak_pss_postgres_mb"] = round(postgres_kb / 1024, 1)
    return figures, []


def consistency_part(projections: dict[str, list[tuple[Any, ...]]], points: Recompute) -> Part:
    """The projections as a re-fold gives them, the points as a full recompute gives them."""
    failures = []
    if projections:
        failures.append(f"projections differ from a re-fold: {projections}")
    if not points.compared:
        failures.append("no indicator point was computed")
    if points.differences:
        failures.append(f"points differ from a full recompute, e.g. {points.differences[:3]}")
    return {
        "projections_vs_refold": "identical" if not projections else f"{len(projections)} differ",
        "points_compared": points.compared,
        "points_differing": len(points.differences),
    }, failures


def services_part(codes: dict[str, int], died: dict[str, str]) -> Part:
    """Each service ran through every fault by itself and stopped cleanly at the end."""
    failures = [f"{name} {what}" for name, what in died.items()]
    failures += [
        f"{name} exited with {code}"
        for name, code in codes.items()
        if code != 0 and name not in died
    ]
    return {"exit_codes": ", ".join(f"{n} {c}" for n, c in codes.items())}, failures


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(1000 * seconds, 1)
