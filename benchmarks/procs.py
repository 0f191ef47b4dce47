"""Running the services as processes for a benchmark: the `itsm-metrics` command, its
environment, waiting for the api, stopping a process group, and per-process peak memory read
from /proc (Linux)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

# Read tokens or a catalog from the caller's environment would change what is measured.
_CLEARED = ("ITSM_READ_TOKEN", "ITSM_CATALOG", "ITSM_LOCAL_POSTGRES_PORT", "ITSM_LOCAL_KAFKA_PORT")


def command() -> list[str]:
    """`itsm-metrics` of this interpreter's environment (.venv/bin), else the module."""
    script = Path(sys.executable).parent / "itsm-metrics"
    if script.exists():
        return [str(script)]
    found = shutil.which("itsm-metrics")
    return [found] if found else [sys.executable, "-m", "services.cli"]


def environment(db_url: str, kafka: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    env.update(
        {
            "ITSM_DATABASE_URL": db_url,
            "ITSM_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "ITSM_API_HOST": "127.0.0.1",
            "ITSM_API_PORT": str(port),
            "ITSM_TOPIC_PREFIX": "itsm.",
            "ITSM_LOG_LEVEL": "WARNING",
            **extra,
        }
    )
    return env


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> float | None:
    """Seconds until `url`/readyz answers 200, or None if the process exits or time runs out."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if proc.poll() is not None:
            return None
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        time.sleep(0.25)
    return None


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, grace: float = 60) -> int:
    """Ask a process (started with start_new_session=True) to stop, then end its whole
    process group if it does not within `grace` seconds. Returns its exit code."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(sig)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            print(f"  pid {proc.pid} did not stop within {grace:.0f} s: killing it", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def alive(pid: int, name: str) -> bool:
    """Whether `pid` still runs and is still the process named `name` (not a reused pid)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return name_of([a.decode(errors="replace") for a in argv if a]) == name


def end_leftovers(seen: dict[int, str]) -> list[str]:
    """Kill (by pid) the processes in `seen` that outlived their parent; their names."""
    left = [f"{name} ({pid})" for pid, name in seen.items() if alive(pid, name)]
    for pid, name in seen.items():
        if alive(pid, name):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return left


def children(pid: int) -> dict[int, str]:
    """Direct children of `pid`, named by their command line: the `itsm-metrics` subcommand
    (`python -m services.cli collector` → collector), else the program's name."""
    out: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            if ppid != pid:
                continue
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            continue
        out[int(entry.name)] = name_of([a.decode(errors="replace") for a in argv if a])
    return out


def name_of(argv: list[str]) -> str:
    for i, arg in enumerate(argv[:-1]):
        if arg == "services.cli" or arg.endswith("itsm-metrics"):
            return argv[i + 1]
    return Path(argv[0]).name if argv else "?"


def memory_kb(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in kB, 0 when unreadable."""
    rss = hwm = 0
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    return rss, hwm


def pss_kb(pid: int) -> int:
    """Proportional set size in kB (0 when unreadable): resident memory with each shared page
    split among the processes sharing it, so the PSS of a server's processes adds up to what
    the server holds (PostgreSQL's shared buffers are counted once, not once per backend)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def tree_pss_kb(pid: int) -> int:
    """PSS of `pid` and its direct children together (a postmaster and its backends)."""
    return pss_kb(pid) + sum(pss_kb(child) for child in children(pid))


@dataclass
class PeakMemory:
    """Samples a process and its direct children every `interval` seconds in a thread: the
    peak resident memory of each, by name (the larger of the sampled VmRSS and the last
    VmHWM the kernel reported); the process itself is named `root`."""

    pid: int
    interval: float = 0.5
    root: str = "up"
    peak_kb: dict[str, int] = field(default_factory=dict)
    seen: dict[int, str] = field(default_factory=dict)  # every child sampled: pid → name
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> PeakMemory:
        self.start()
        return self

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Take a last sample (while the processes still live) and stop sampling."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self.sample()

    def sample(self) -> None:
        kids = children(self.pid)
        self.seen.update(kids)
        for pid, name in {self.pid: self.root, **kids}.items():
            rss, hwm = memory_kb(pid)
            self.peak_kb[name] = max(self.peak_kb.get(name, 0), rss, hwm)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def mb(self) -> dict[str, float]:
        return {name: round(kb / 1024, 1) for name, kb in sorted(self.peak_kb.items())}
