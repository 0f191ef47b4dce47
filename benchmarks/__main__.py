from __future__ import annotations

import json
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import aggregator, collector_drain, scale_up, soak
from shared import logging as itsm_logging

# `reads.run_reads` needs a computed month; the aggregator benchmark prepares one and calls it.
BENCHMARKS: dict[str, Callable[[], dict[str, Any]]] = {
    "collector_drain": collector_drain.run,
    "aggregator": aggregator.run,
    "scale_up": scale_up.run,
    "history": scale_up.history,
    "soak": soak.run,
}


def main(names: list[str]) -> None:
    # A stop request unwinds normally, so the embedded engines are stopped and removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    itsm_logging.configure("WARNING")
    results_dir = Path(__file__).parent / "results"
    results_dir.mkdir(exist_ok=True)
    failed: list[str] = []
    for name in names or list(BENCHMARKS):
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        result = BENCHMARKS[name]()
        result["seconds"] = round(time.perf_counter() - started, 1)
        width = max(len(k) for k in result)
        for key, value in result.items():
            print(
                f"  {key:<{width}}  {value:>12,}"
                if isinstance(value, int | float) and not isinstance(value, bool)
                else f"  {key:<{width}}  {value}"
            )
        (results_dir / f"{name}.json").write_text(json.dumps(result, indent=2))
        if result.get("ok") is False:  # a benchmark that checks, and found something wrong
            failed.append(name)
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main(sys.argv[1:])
