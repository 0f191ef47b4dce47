"""Stop requests (SIGTERM, SIGINT) turned into a `threading.Event`, with nothing done inside the
signal handler.

A Python signal handler runs in the main thread between two bytecodes, wherever it was: inside
`Event.wait()` in kafka-python's selector, inside a logging call, inside an earlier run of the
same handler (a second SIGTERM). A handler that sets an Event or logs takes a lock the
interrupted code may hold, and the process hangs for ever (seen: collectors outliving their
stack by an hour, stuck in `Event.set` ← handler ← `Condition.wait`). Here the C-level handler
only writes the signal's number to a pipe (`signal.set_wakeup_fd`), the Python handler does
nothing, and a thread reading the pipe logs and sets the Event."""

from __future__ import annotations

import logging
import os
import signal
import threading

log = logging.getLogger("itsm.signals")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def _ignore(_signum: int, _frame: object) -> None:
    """Installed so that the signal is caught (its default would end the process at once);
    the work is done by the watcher thread."""


def stop_on_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> threading.Event:
    """An Event set (by a thread of its own) when one of `signals` arrives. Call from the main
    thread; one per process (it owns the process' wakeup fd)."""
    stop = threading.Event()
    read_fd, write_fd = os.pipe()
    os.set_blocking(write_fd, False)  # the C handler must never block
    signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    wanted = {int(s) for s in signals}
    for sig in signals:
        signal.signal(sig, _ignore)

    def watch() -> None:
        while True:
            try:
                got = os.read(read_fd, 64)
            except OSError:
                return
            if not got:
                return
            for signum in got:
                if signum in wanted and not stop.is_set():
                    log.info("stopping", extra={"signal": signal.Signals(signum).name})
                    stop.set()

    threading.Thread(target=watch, name="stop-signals", daemon=True).start()
    return stop


def ignore_stop_signals(signals: tuple[signal.Signals, ...] = STOP_SIGNALS) -> None:
    """Once a service has stopped: further stop signals (a burst, a supervisor repeating its
    request) must not end the exiting process by the signal, which the interpreter's shutdown
    would let them do (it restores the default handlers). Call from the main thread."""
    for sig in signals:
        signal.signal(sig, signal.SIG_IGN)
