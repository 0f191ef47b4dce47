"""Fault injection for the crash tests, not an operator setting.

`ITSM_FAULT=<point>:<n>` makes the process die at once, as `kill -9` would (no cleanup, no
flush, exit status 137), the n-th time it passes `checkpoint(<point>)`. Unset, a checkpoint
costs one comparison."""

from __future__ import annotations

import os
from collections import Counter

_SPEC = os.environ.get("ITSM_FAULT", "")
_POINT, _, _NTH = _SPEC.partition(":")
_passed: Counter[str] = Counter()


def checkpoint(point: str) -> None:
    if point != _POINT:
        return
    _passed[point] += 1
    if _passed[point] >= int(_NTH or 1):
        os._exit(137)
