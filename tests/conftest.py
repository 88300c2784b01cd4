"""Shared fixtures: a temporary workspace and the real CLI invoked through Typer's CliRunner."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright
from typer.testing import CliRunner, Result

from mailer import config
from mailer.cli import app
from mailer.db.database import Database
from mailer.db.opening import open_database
from mailer.db.postgres import PostgresDatabase, close_pools
from mailer.db.sqlite import SqliteDatabase
from tests.postgres_server import PostgresServer, postgres_server
from tests.smtp_servers import LoopbackController, Mailbox, Recorder, serving, start

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_CSV = ROOT / "subscribers" / "example.csv"
EXAMPLE_REPORT = ROOT / "examples" / "report.md"

Invoke = Callable[..., Result]
# A publication's own settings: a send over SMTP refuses `mailer init`'s placeholders.
PUBLICATION = {
    "MAILER_NEWSLETTER_SENDER": "The Vale Bulletin <bulletin@example.org>",
    "MAILER_NEWSLETTER_POSTAL_ADDRESS": "The Vale Bulletin, 2 Mill Lane, Lower Vale",
    "MAILER_NEWSLETTER_BASE_URL": "http://127.0.0.1:8080",  # loopback: plain http is fine
}


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(__import__("os").environ):
        if name.startswith("MAILER_"):
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def mailer(workspace: Path) -> Invoke:
    """Run ``mailer --workspace <tmp> ARGS...`` in-process; returns click's Result."""
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        return runner.invoke(app, ["--workspace", str(workspace), *args], input=input, env=env)

    return invoke


def write_csv(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


@pytest.fixture
def smtp_server() -> Iterator[tuple[LoopbackController, Recorder]]:
    yield from serving(enable_SMTPUTF8=True)


@pytest.fixture
def smtp() -> Iterator[tuple[LoopbackController, Mailbox]]:
    """A recording server that a test can wait on for the n-th message."""
    mailbox = Mailbox()
    controller = start(mailbox, enable_SMTPUTF8=True)
    yield controller, mailbox
    controller.stop()


# Debian's chromium, which .ci/run installs; Playwright only drives it (no `playwright install`).
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A real full disk to be: a 3 MB tmpfs (the tests run as root), unmounted afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="mailer-full-"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(folder)], check=True)
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)
        folder.rmdir()


def fill(path: Path) -> None:
    """Write zeros into ``path`` until its disk has not one byte left."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(descriptor, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(descriptor)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the whole session (tests/postgres_server.py).

    Skipped where PostgreSQL is not installed, unless CI is set: there the tests fail.
    """
    yield from postgres_server()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the private server, dropped after the test."""
    url = postgres.create_database()
    yield url
    close_pools()  # this process's connections to it
    postgres.drop_database(url)


@pytest.fixture(scope="session")
def migrated(postgres: PostgresServer) -> str:
    """A database with mailer's schema, made once: the template of each test's store."""
    url = postgres.create_database()
    PostgresDatabase(url).close()  # opening it migrates it
    close_pools()  # a template takes no connections while it is copied
    return url.rsplit("/", 1)[1]


@pytest.fixture
def store_url(postgres: PostgresServer, migrated: str) -> Iterator[str]:
    """A new database with mailer's schema already in it (a copy of ``migrated``)."""
    url = postgres.create_database(template=migrated)
    yield url
    close_pools()
    postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request: pytest.FixtureRequest, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The store a test runs on, once each: the workspace's SQLite file, then a new database
    on the private PostgreSQL server, named by MAILER_DATABASE_URL for the CLI, for processes
    the test starts and for ``store``. A module takes both with
    ``pytestmark = pytest.mark.usefixtures("engine")``."""
    if request.param == "postgresql":
        monkeypatch.setenv("MAILER_DATABASE_URL", request.getfixturevalue("store_url"))
    return str(request.param)


def dump(database: Database) -> str:
    """Every row of every table as text, to search for what must not be there."""
    if isinstance(database, SqliteDatabase):
        return "\n".join(database.connection.iterdump())
    tables = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
    names = [row[0] for row in database.query(tables)]
    return "\n".join(repr(row) for name in names for row in database.query(f"SELECT * FROM {name}"))


def engine_environ() -> dict[str, str]:
    """The test's engine as a settings variable, for tests that load settings from a dict."""
    url = os.environ.get("MAILER_DATABASE_URL", "")
    return {"MAILER_DATABASE_URL": url} if url else {}


def store(workspace: Path, *, create: bool = True) -> Database:
    """The workspace's database, on the engine the test runs on (see ``engine``)."""
    return open_database(config.load(workspace), create=create)
