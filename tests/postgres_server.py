"""A private, throwaway PostgreSQL server for the tests: initdb in a temporary folder, pg_ctl on
a free loopback port, run as an unprivileged user (initdb refuses root, and the tests run as root).

It uses the binaries of Debian's ``postgresql`` package, which ``.ci/run`` installs; the
package's own cluster is never touched. Where the binaries are absent the tests that need the
server are skipped, except under CI (the environment variable ``CI`` set), where they fail.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

DEBIAN_VERSIONS = Path("/usr/lib/postgresql")  # Debian's layout: /usr/lib/postgresql/15/bin
MISSING = "PostgreSQL is not installed: .ci/run installs Debian's postgresql package"
HOST = "127.0.0.1"
# A throwaway server: nothing it writes has to survive a crash, so it never waits for the disk.
SETTINGS = {
    "listen_addresses": HOST,
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}
# Trust, but only over the server's own socket folder and loopback (it listens on nothing else).
PG_HBA = """\
# A private test server: no passwords, reachable only through its socket folder and 127.0.0.1.
local all all              trust
host  all all 127.0.0.1/32 trust
"""
PORT_ATTEMPTS = 3  # another process may take the free port between our probe and the bind


def find_binaries(debian_versions: Path = DEBIAN_VERSIONS) -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: from PATH, else Debian's newest version."""
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        # Resolve symlinks (such as /usr/local/bin/pg_ctl) to the version's own folder.
        folder = Path(pg_ctl).resolve().parent
        if Path(initdb).resolve().parent == folder:
            return folder
    found = [
        folder
        for folder in debian_versions.glob("*/bin")
        if all(os.access(folder / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))
    ]
    if not found:
        return None
    return max(found, key=lambda folder: _version(folder.parent.name))


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name))


def require_binaries(debian_versions: Path = DEBIAN_VERSIONS) -> Path:
    """The binaries' folder; without one, skip the test, or fail it when CI is set."""
    folder = find_binaries(debian_versions)
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail(MISSING, pytrace=False)
        pytest.skip(MISSING)
    return folder


def unprivileged_user() -> str:
    """Who runs the server: the current user, or when that is root, ``postgres`` or ``nobody``."""
    if os.geteuid() != 0:
        return pwd.getpwuid(os.geteuid()).pw_name
    for name in ("postgres", "nobody"):  # Debian's package creates the postgres system user
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise RuntimeError("no unprivileged user (postgres or nobody) to run PostgreSQL as")


def as_user(user: str) -> list[str]:
    """The command prefix that runs a program as ``user`` (nothing if that is who we are)."""
    if os.geteuid() != 0:
        return []
    if shutil.which("runuser"):
        return ["runuser", "-u", user, "--"]
    entry = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={entry.pw_uid}", f"--regid={entry.pw_gid}", "--init-groups", "--"]


def free_port() -> int:
    """A loopback port nobody is listening on right now (the OS picks it for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


@dataclass
class PostgresServer:
    """A running private server; ``url`` reaches its ``postgres`` database as its superuser."""

    binaries: Path
    user: str
    folder: Path  # the temporary folder: data/, server.log and the Unix socket
    port: int = 0

    @property
    def data(self) -> Path:
        return self.folder / "data"

    @property
    def log(self) -> Path:
        return self.folder / "server.log"

    @property
    def url(self) -> str:
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{self.user}@{HOST}:{self.port}/{name}"

    def create_database(self, template: str = "") -> str:
        """Create a new database with a unique name and return its URL: empty, or a copy of
        the database ``template`` (which nobody may be connected to)."""
        name = f"test_{uuid.uuid4().hex}"
        copy = sql.SQL(" TEMPLATE {}").format(sql.Identifier(template)) if template else sql.SQL("")
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(sql.SQL("CREATE DATABASE {}{}").format(sql.Identifier(name), copy))
        return self.database_url(name)

    def drop_database(self, url: str) -> None:
        """Drop a database that ``create_database`` made, closing connections left open to it."""
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        """Run one of the server's programs as its user; raise with its output if it fails."""
        command = [*as_user(self.user), str(self.binaries / program), *args]
        # cwd: a folder the user can enter (the caller's may be root's own).
        done = subprocess.run(command, cwd=self.folder, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(
                f"{program} failed ({done.returncode}): {' '.join(command)}\n"
                f"{done.stdout}{done.stderr}{self._log_tail()}"
            )
        return done

    def _log_tail(self) -> str:
        try:
            return "server.log:\n" + "\n".join(self.log.read_text().splitlines()[-20:])
        except OSError:
            return ""

    def init(self) -> None:
        """Create the cluster: UTF-8 with the C locale (bytewise order, as in SQLite)."""
        self.run("initdb", "-D", str(self.data), "-A", "trust", "-E", "UTF8", "--no-locale",
                 "--no-sync")  # fmt: skip
        # Written in place, so the files keep their owner.
        (self.data / "pg_hba.conf").write_text(PG_HBA)
        settings = {**SETTINGS, "unix_socket_directories": str(self.folder)}
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write("\n# The tests' private server (tests/postgres_server.py)\n")
            conf.writelines(f"{key} = '{value}'\n" for key, value in settings.items())

    def start(self) -> None:
        """Start on a free loopback port; ``pg_ctl -w`` returns once the server accepts."""
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self.port = free_port()
            try:
                self.run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o",
                         f"-p {self.port}", "-w", "-t", "60", "start")  # fmt: skip
                return
            except RuntimeError:
                if attempt == PORT_ATTEMPTS or "already in use" not in self._log_tail():
                    raise

    def stop(self) -> None:
        """Stop at once (nothing needs to be kept) and remove the folder."""
        try:
            if (self.data / "postmaster.pid").exists():
                self.run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)


def postgres_server() -> Iterator[PostgresServer]:
    """Start a private server, yield it, and stop it and remove its folder afterwards."""
    binaries = require_binaries()
    user = unprivileged_user()
    folder = Path(tempfile.mkdtemp(prefix="mailer-postgres-"))
    entry = pwd.getpwnam(user)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    server = PostgresServer(binaries=binaries, user=user, folder=folder)
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.stop()
