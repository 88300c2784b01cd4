"""The SQLite engine: one connection in WAL mode, its migrations, sqlite errors as MailerErrors."""

from __future__ import annotations

import contextlib
import errno
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any, ClassVar

from mailer.config.private import private_file, private_folder
from mailer.db.campaign_lock import one_sender
from mailer.db.database import Connection, Database, NoDatabaseError
from mailer.db.reserve import Reserve
from mailer.db.schema import MIGRATIONS
from mailer.errors import DiskFullError, MailerError, StoreError, StoreUnavailable


def is_full(error: sqlite3.Error) -> bool:
    """Whether a sqlite error says the disk is full (by its code, or by its words)."""
    return getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "is full" in str(
        error
    )


class SqliteDatabase(Database):
    """The workspace's SQLite file; ``transaction()`` is BEGIN IMMEDIATE ... COMMIT.

    A new database file is created 0600 in folders created 0700; SQLite gives its -wal and -shm
    files the database file's mode. Existing files and folders keep theirs. With
    ``create=False`` nothing is created: a missing file is a NoDatabaseError.
    """

    engine: ClassVar[str] = "sqlite"

    def __init__(self, path: Path, busy_timeout: float = 5.0, *, create: bool = True) -> None:
        super().__init__()
        self.path, self.where = path, str(path)
        if create:
            self._create(path)
        elif not path.is_file():
            raise NoDatabaseError(path)
        try:
            self.connection = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
            self.connection.execute("PRAGMA foreign_keys = ON")
            into_wal(self.connection, busy_timeout)
            self.connection.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.Error as error:
            raise self.error(error) from None

    def _create(self, path: Path) -> None:
        try:
            private_folder(path.parent)
        except OSError as error:
            raise self.os_error(error, "cannot create its folder") from None
        try:
            private_file(path)
        except OSError as error:
            raise self.os_error(error, "cannot create it") from None

    def os_error(self, error: OSError, doing: str) -> MailerError:
        """DiskFullError for no space left (ENOSPC), else a StoreError saying what failed."""
        if error.errno == errno.ENOSPC:
            return DiskFullError(f"database {self.path}")
        return StoreError(self.path, f"{doing}: {error.strerror}")

    def close(self) -> None:
        self.connection.close()

    def error(self, error: sqlite3.Error | OverflowError) -> MailerError:
        """The error that says what a sqlite error means for the user: DiskFullError when the
        disk is full, else a StoreError."""
        text = str(error)
        if isinstance(error, OverflowError):  # a number sqlite cannot store (over 2**63 - 1)
            return StoreError(self.path, "a number too large for SQLite")
        if isinstance(error, sqlite3.Error) and is_full(error):
            return DiskFullError(f"database {self.path}")
        if "locked" in text or "busy" in text:
            return StoreUnavailable(
                self.path, "locked by another process; try again when it is done"
            )
        if "unable to open" in text:
            return StoreError(self.path, "cannot be opened (check the path and its permissions)")
        if "readonly" in text:
            return StoreError(self.path, "is read-only")
        return StoreError(self.path, text)

    def _migrate(self) -> None:
        """Bring the schema up to date in one transaction, under the write lock: a second
        process opening a new database at once (the web side and the scheduler, two commands)
        waits, then finds the work done."""
        if self._version() >= len(MIGRATIONS):
            return
        db = self.connection
        db.execute("PRAGMA foreign_keys = OFF")  # rebuilt tables: references must not cascade
        try:
            db.execute("BEGIN IMMEDIATE")
            version = self._version()
            for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(migration.sql):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
            if db.execute("PRAGMA foreign_key_check").fetchone():
                raise StoreError(self.path, f"migration to {len(MIGRATIONS)} broke a reference")
            db.execute("COMMIT")
        finally:
            rollback(db)
            db.execute("PRAGMA foreign_keys = ON")

    def mapped(self, error: BaseException) -> BaseException:
        return self.error(error) if isinstance(error, sqlite3.Error | OverflowError) else error

    def campaign_lock(
        self, campaign_id: int, *, shared: bool = False
    ) -> AbstractContextManager[None]:
        return one_sender(self.path, campaign_id, shared=shared)

    def reserve(self) -> Reserve:
        return Reserve(self.path)

    def secure_delete(self) -> None:
        self.execute("PRAGMA secure_delete = ON")  # freed space is zeroed, not left behind

    def checkpoint(self) -> bool:
        row = self.query_one("PRAGMA wal_checkpoint(TRUNCATE)")
        return row is not None and row[0] == 0

    @contextmanager
    def fewer_checkpoints(self, pages: int) -> Iterator[None]:
        before = int(self.query("PRAGMA wal_autocheckpoint")[0][0])
        self.execute(f"PRAGMA wal_autocheckpoint = {pages}")
        try:
            yield
        finally:
            self.execute(f"PRAGMA wal_autocheckpoint = {before}")

    def _begin(self, exclusive: bool) -> Connection:
        try:
            self.connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as error:
            raise self.error(error) from None
        return self.connection

    def _commit(self) -> None:
        self.connection.execute("COMMIT")

    def _rollback(self) -> None:
        rollback(self.connection)

    def _version(self) -> int:
        return int(self.connection.execute("PRAGMA user_version").fetchone()[0])

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.connection.execute(sql, params).fetchall()
        except (sqlite3.Error, OverflowError) as error:
            raise self.error(error) from None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        try:
            for row in self.connection.execute(sql, params):  # noqa: UP028 -- a reader that
                yield row  # stops early closes only this generator, never a closed cursor
        except (sqlite3.Error, OverflowError) as error:
            raise self.error(error) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self.connection.execute(sql, params)
        except (sqlite3.Error, OverflowError) as error:
            raise self.error(error) from None


def into_wal(
    db: sqlite3.Connection, timeout: float, pause: Callable[[float], None] = time.sleep
) -> None:
    """Switch the file to WAL, retrying for up to ``timeout`` seconds while it is busy.

    The switch needs the whole file. While another connection writes (a second process
    creating the same new file), SQLite refuses at once with SQLITE_BUSY instead of calling
    the busy handler, since waiting while holding its own read lock could deadlock.
    """
    deadline, wait = time.monotonic() + timeout, 0.001
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            busy = getattr(error, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
        pause(wait)
        wait = min(wait * 2, 0.05)


def _statements(script: str) -> list[str]:
    """A migration's statements one by one (a trigger's body keeps its own semicolons)."""
    found, pending = [], ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    if pending.strip():
        found.append(pending.strip())
    return found


def rollback(db: sqlite3.Connection) -> None:
    """Undo what is left of a transaction. SQLite may have rolled it back already (a full disk
    does), and a rollback that fails must not hide the error that called for it."""
    with contextlib.suppress(sqlite3.Error):
        if db.in_transaction:
            db.execute("ROLLBACK")
