"""The PostgreSQL engine: pooled psycopg connections, the same statements through the dialect."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, ClassVar

import psycopg
from psycopg import errors
from psycopg.adapt import Dumper
from psycopg.postgres import adapters as postgres
from psycopg.pq import TransactionStatus
from psycopg.types.string import TextLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from mailer.config.postgres_url import shown
from mailer.db.database import Connection, Cursor, Database, NoDatabaseError
from mailer.db.dialect import to_postgres
from mailer.db.postgres_copy import copy_in
from mailer.db.schema import MIGRATIONS
from mailer.db.schema_postgres import BASELINE, BASELINE_VERSION
from mailer.errors import (
    CampaignLocked,
    DiskFullError,
    MailerError,
    StoreError,
    StoreUnavailable,
)

POOL_SIZE = 24  # connections per process: the web side's threads, the scheduler's runs
# Advisory lock keys (bigint): the write lock every transaction takes, as SQLite's BEGIN
# IMMEDIATE does; the schema's; one per campaign, held by the process sending it.
WRITE_LOCK = 0x6D61_696C_6572_0001
MIGRATION_LOCK = 0x6D61_696C_6572_0002
CAMPAIGN_LOCKS = 0x6D61_696C_0000_0000

_pools: dict[str, ConnectionPool[psycopg.Connection[Any]]] = {}
_pools_lock = threading.Lock()


class FlagDumper(Dumper):
    """A Python bool as SQLite stores it: the integer 0 or 1."""

    oid = postgres.types["int4"].oid

    def dump(self, obj: Any) -> bytes:
        return b"1" if obj else b"0"


def _configure(connection: psycopg.Connection[Any]) -> None:
    # JSON comes back as text, as SQLite gives it: the code parses what it reads.
    for name in ("json", "jsonb"):
        connection.adapters.register_loader(name, TextLoader)
    connection.adapters.register_dumper(bool, FlagDumper)


def _reset(connection: psycopg.Connection[Any]) -> None:
    """A connection given back to the pool holds none of its user's session locks (the
    schema's, a campaign's), even where their unlock never ran."""
    connection.execute("SELECT pg_advisory_unlock_all()")


def _pool(url: str, where: str, timeout: float) -> ConnectionPool[psycopg.Connection[Any]]:
    with _pools_lock:
        pool = _pools.get(url)
        if pool is not None and not pool.closed:
            return pool
        try:  # one plain connection first: the pool would only log why it cannot connect
            psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
        except psycopg.ProgrammingError:  # libpq's words would quote the url, password and all
            raise StoreError(where, "is not a valid url") from None
        except psycopg.Error as error:
            raise StoreUnavailable(where, f"cannot connect: {_first_line(error)}") from None
        # A lock waited for as long as SQLite's busy_timeout, not for ever; a transaction left
        # open by a stuck session ends after a minute.
        options = (
            f"-c lock_timeout={int(timeout * 1000)} -c idle_in_transaction_session_timeout=60s"
        )
        # Each connection is checked as it is handed out: after a server restart the pool's
        # stale ones are replaced there, instead of failing a reader's request each.
        pool = ConnectionPool(url, min_size=1, max_size=POOL_SIZE, open=False,
                              kwargs={"autocommit": True, "options": options},
                              configure=_configure, reset=_reset, timeout=timeout,
                              check=ConnectionPool.check_connection)  # fmt: skip
        pool.open(wait=True, timeout=max(timeout, 1.0))
        _pools[url] = pool
        return pool


@atexit.register
def close_pools() -> None:
    """Close every pool this process opened (at exit, and in tests between databases)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class PgConnection:
    """A connection as the store's code uses SQLite's: SQLite statements, translated."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self.connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor:
        statement = to_postgres(sql)
        cursor = self.connection.execute(statement.sql, statement.bind(parameters))
        self._follow(statement.gives_id_of)
        return cursor

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor:
        statement = to_postgres(sql)
        cursor = self.connection.cursor()
        cursor.executemany(statement.sql, [statement.bind(row) for row in parameters])
        self._follow(statement.gives_id_of)
        return cursor

    def copy_rows(
        self,
        table: str,
        columns: Sequence[str],
        rows: Iterable[Sequence[Any]],
        meanwhile: Callable[[], None] | None = None,
    ) -> None:
        """Rows into ``table`` by COPY; ``meanwhile`` as ``insert_rows`` says."""
        copy_in(self.connection, table, columns, rows, meanwhile)
        self._follow(table if "id" in columns else "")

    def _follow(self, table: str) -> None:
        """After ids given by hand, the table's next id is past the largest."""
        if table:
            self.connection.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" GREATEST((SELECT MAX(id) FROM {table}), 1))"
            )


class PostgresDatabase(Database):
    """A PostgreSQL database shared by every process and host that names its url."""

    engine: ClassVar[str] = "postgresql"

    def __init__(self, url: str, busy_timeout: float = 5.0, *, create: bool = True) -> None:
        super().__init__()
        self.url, self.where, self.timeout = url, shown(url), busy_timeout
        self.pool = _pool(url, self.where, busy_timeout)
        try:
            self.connection = self.pool.getconn(timeout=max(busy_timeout, 1.0))
        except PoolTimeout:
            raise StoreUnavailable(self.where, "no connection came free; try again") from None
        self.db = PgConnection(self.connection)
        try:
            self._migrate(create)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.connection is not None:
            self.pool.putconn(self.connection)
            self.connection = None  # type: ignore[assignment]

    def error(self, error: BaseException) -> MailerError:
        if isinstance(error, errors.LockNotAvailable):
            return StoreUnavailable(
                self.where, "locked by another process; try again when it is done"
            )
        if isinstance(error, errors.DiskFull):
            return DiskFullError(f"database {self.where}")
        if isinstance(error, errors.NumericValueOutOfRange):
            return StoreError(self.where, "a number too large to store")
        if isinstance(error, psycopg.OperationalError):
            return StoreUnavailable(self.where, f"cannot reach it: {_first_line(error)}")
        return StoreError(self.where, _first_line(error))

    def mapped(self, error: BaseException) -> BaseException:
        return self.error(error) if isinstance(error, psycopg.Error) else error

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        try:
            return self.db.execute(sql, params).fetchall()
        except psycopg.Error as error:
            raise self.error(error) from None

    def stream(self, sql: str, params: Sequence[Any] = ()) -> Iterator[tuple[Any, ...]]:
        """Rows as the server sends them, on a connection of their own: this one stays free
        for the statements a caller runs while it reads."""
        statement = to_postgres(sql)
        try:
            with self.pool.connection() as connection:
                cursor = connection.cursor()
                yield from cursor.stream(statement.sql, statement.bind(params))
        except psycopg.Error as error:
            raise self.error(error) from None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        try:
            self.db.execute(sql, params)
        except psycopg.Error as error:
            raise self.error(error) from None

    @contextmanager
    def _campaign_lock(self, campaign_id: int, shared: bool) -> Iterator[None]:
        """A session lock on this database's own connection (a COMMIT keeps it): held while
        the connection lives, dropped with it if the process dies."""
        key, kind = CAMPAIGN_LOCKS + campaign_id, "_shared" if shared else ""
        try:
            row = self.connection.execute(
                f"SELECT pg_try_advisory_lock{kind}(%s)", (key,)
            ).fetchone()
        except psycopg.Error as error:
            raise self.error(error) from None
        if not row or not row[0]:
            raise CampaignLocked(campaign_id)
        try:
            yield
        finally:
            with suppress(psycopg.Error):  # a connection gone has dropped the lock already
                self.connection.execute(f"SELECT pg_advisory_unlock{kind}(%s)", (key,))

    def campaign_lock(
        self, campaign_id: int, *, shared: bool = False
    ) -> AbstractContextManager[None]:
        return self._campaign_lock(campaign_id, shared)

    def analyze(self, *tables: str) -> None:
        self.execute(f"ANALYZE {', '.join(tables)}")

    def reserve(self) -> None:
        return None  # the server's disk is its own to watch

    def _begin(self, exclusive: bool) -> Connection:
        try:
            self.connection.execute("BEGIN")
            if exclusive:
                self.connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))
        except psycopg.Error as error:
            self._rollback()
            raise self.error(error) from None
        return self.db

    def _commit(self) -> None:
        self.connection.execute("COMMIT")

    def _rollback(self) -> None:
        try:
            if self.connection.info.transaction_status != TransactionStatus.IDLE:
                self.connection.execute("ROLLBACK")
        except psycopg.Error:
            pass  # a rollback that fails must not hide the error that called for it

    def _version(self) -> int:
        row = self.connection.execute("SELECT to_regclass('mailer_schema') IS NOT NULL").fetchone()
        if not row or not row[0]:
            return 0
        found = self.connection.execute("SELECT version FROM mailer_schema").fetchone()
        return int(found[0]) if found else 0

    def _migrate(self, create: bool) -> None:
        """Bring the schema up to date in one transaction under the schema's lock; a process
        that waited for another finds the work done."""
        try:
            if self._version() >= len(MIGRATIONS):
                return
            if not create and self._version() == 0:
                raise NoDatabaseError(self.where)
            # Taken before the transaction, which then starts with the server's news of the
            # tables the other process made: a transaction already open while it waited would
            # still see "no mailer_schema" in its cache, and make every table again.
            self.connection.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK,))
            try:
                self._migrate_locked()
            finally:
                with suppress(psycopg.Error):  # a connection gone has dropped the lock already
                    self.connection.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK,))
        except psycopg.Error as error:
            raise self.error(error) from None

    def _migrate_locked(self) -> None:
        with self.connection.transaction():
            version = self._version()
            if version >= len(MIGRATIONS):  # done meanwhile, perhaps by a newer mailer
                return
            if version == 0:
                self.connection.execute(BASELINE)
                self.connection.execute("CREATE TABLE mailer_schema (version INTEGER)")
                self.connection.execute("INSERT INTO mailer_schema VALUES (0)")
                version = BASELINE_VERSION
            for migration in MIGRATIONS[version:]:
                assert migration.postgresql, "each migration after 12 has both engines'"
                self.connection.execute(migration.postgresql)
            self.connection.execute("UPDATE mailer_schema SET version = %s", (len(MIGRATIONS),))
