"""An action item's states (SPEC §7.3). Pure.

`open` and `in_progress` are open and may move to each other or close; `done` and `dropped`
close the item for good: a closed item is not changed any more (a new item is recorded in the
next review instead), so what a review shows as closed stays closed."""

from __future__ import annotations

from typing import Literal

ItemState = Literal["open", "in_progress", "done", "dropped"]
ITEM_STATES: tuple[ItemState, ...] = ("open", "in_progress", "done", "dropped")
OPEN_STATES: tuple[ItemState, ...] = ("open", "in_progress")

TRANSITIONS: dict[ItemState, tuple[ItemState, ...]] = {
    "open": ("in_progress", "done", "dropped"),
    "in_progress": ("open", "done", "dropped"),
    "done": (),
    "dropped": (),
}


def allowed(state: ItemState) -> tuple[ItemState, ...]:
    return TRANSITIONS[state]


def is_open(state: str) -> bool:
    return state in OPEN_STATES
