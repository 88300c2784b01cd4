"""The store's one interface, whichever engine holds it: transactions, queries, errors."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

from mailer.errors import StoreError
from mailer.times import stamp

MAX_ID = 2**63 - 1  # the largest integer both engines store: a larger id names nothing

# Bind a Python list as one parameter: `x IN (SELECT value FROM json_each(?))` with
# as_json(values); PostgreSQL reads it as `x = ANY(array)`.
IN_JSON = "(SELECT value FROM json_each(?))"


def now() -> str:
    """The time stamps the database stores: UTC, to the second, ISO 8601."""
    return stamp(datetime.now(UTC))


def as_json(values: Iterable[Any]) -> str:
    return json.dumps(list(values))


class Cursor(Protocol):
    """What a statement gives back, in either engine."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


class Connection(Protocol):
    """A transaction's handle: SQLite's own connection, or PostgreSQL's through the dialect."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


def insert_rows(
    db: Connection,
    table: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """Many new rows into one table, in the caller's transaction: one COPY on PostgreSQL (one
    stream, not a round trip per row), one prepared INSERT repeated on SQLite. PostgreSQL runs
    ``meanwhile`` (work that does not use the database) while its server stores the rows;
    SQLite, which stores them in this process, does not run it."""
    if not rows:
        return
    copy = getattr(db, "copy_rows", None)
    if copy is not None:
        copy(table, columns, rows, meanwhile)
        return
    marks = ", ".join("?" * len(columns))
    db.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


class Watcher(Protocol):
    """Work done inside every transaction of a database: at its start and before its commit."""

    def begin(self, db: Connection) -> None: ...

    def before_commit(self, db: Connection) -> None: ...


class Reserve(Protocol):
    """Room held back to record a run's last results when the disk fills (SQLite only)."""

    def hold(self) -> bool: ...

    def release(self) -> bool: ...


class NoDatabaseError(StoreError):
    """A database opened only if it exists (``create=False``) that is not there."""

    def __init__(self, where: Path | str) -> None:
        super().__init__(where, "does not exist")


class Database(ABC):
    """The workspace's store. ``transaction()`` holds the store's write lock from BEGIN to
    COMMIT (one writer at a time, in either engine), rolls back on any error, and turns the
    engine's errors into MailerErrors; the first error is the one raised."""

    engine: ClassVar[str]
    where: str  # what messages call it: a file, or a url without its password

    def __init__(self) -> None:
        self.watchers: list[Watcher] = []

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def transaction(self, *, exclusive: bool = True) -> Transaction:
        """A write transaction. ``exclusive=False`` is for work that locks its own rows (the
        claims of `campaigns work`, a campaign's results): PostgreSQL lets such transactions
        run side by side, SQLite still takes them one at a time."""
        return Transaction(self, exclusive)

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """All rows of one statement, outside any explicit transaction."""

    def query_one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    @abstractmethod
    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows one at a time, for lists too long to hold."""

    @abstractmethod
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """One statement in its own implicit transaction."""

    def analyze(self, *tables: str) -> None:
        """After many rows went in: PostgreSQL's planner learns the tables' new sizes now, not
        when its autovacuum gets to them (SQLite plans from its indexes alone)."""
        return None

    def secure_delete(self) -> None:
        """From now on, the space of deleted rows is overwritten in the database file (SQLite's
        secure_delete); PostgreSQL's vacuum reclaims old row versions itself."""
        return None

    def checkpoint(self) -> bool:
        """Move the write-ahead log into the database file and empty it, so the old pages are
        gone from it too; False when another process holds it open (the log is reused, not
        erased). True where there is no log to empty (PostgreSQL)."""
        return True

    def fewer_checkpoints(self, pages: int) -> AbstractContextManager[None]:
        """While many rows go in, SQLite copies its log into the database less often, every
        ``pages`` pages (each copy waits for the disk); as before afterwards. Nothing on
        PostgreSQL."""
        return nullcontext()

    @abstractmethod
    def mapped(self, error: BaseException) -> BaseException:
        """The MailerError an engine's error means for the user; any other error as it is."""

    @abstractmethod
    def campaign_lock(
        self, campaign_id: int, *, shared: bool = False
    ) -> AbstractContextManager[None]:
        """Held by the one process sending a campaign, or ``shared`` by each of its workers
        (`campaigns work`): CampaignLocked when another process holds it the other way."""

    @abstractmethod
    def reserve(self) -> Reserve | None:
        """Room to give back on a full disk, where the store is a local file."""

    @abstractmethod
    def _begin(self, exclusive: bool) -> Connection: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _rollback(self) -> None: ...


class Transaction:
    """One write transaction of ``database``; its watchers run inside it."""

    def __init__(self, database: Database, exclusive: bool = True) -> None:
        self.database, self.exclusive = database, exclusive

    def __enter__(self) -> Connection:
        self.db = self.database._begin(self.exclusive)
        try:
            for watcher in self.database.watchers:
                watcher.begin(self.db)
        except BaseException as error:
            self._fail(error)
        return self.db

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, _: object
    ) -> None:
        if error is None:
            try:
                for watcher in self.database.watchers:
                    watcher.before_commit(self.db)
                self.database._commit()
            except BaseException as failure:
                self._fail(failure)
            return
        self.database._rollback()
        found = self.database.mapped(error)
        if found is not error:
            raise found from None

    def _fail(self, error: BaseException) -> None:
        self.database._rollback()
        found = self.database.mapped(error)
        if found is error:
            raise error
        raise found from None
