"""COPY into PostgreSQL, with the caller's other work done while the server stores the rows."""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import errors, sql
from psycopg.copy import LibpqWriter
from psycopg.pq import ExecStatus
from psycopg.pq.abc import PGconn, PGresult
from psycopg.waiting import Wait

# psycopg's own waits (Connection.wait) drive these: each yield says what the socket must
# become ready for, as psycopg's generators do.
Steps = Generator[Wait, Any, Any]


def copy_in(
    connection: psycopg.Connection[Any],
    table: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    meanwhile: Callable[[], None] | None = None,
) -> None:
    """``rows`` into ``table`` by one COPY. ``meanwhile`` runs once the last row is sent,
    while the server stores them and checks their foreign keys (a COPY's checks all run at
    its end), instead of after: it must not use this connection."""
    statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, columns))
    )
    cursor = connection.cursor()
    writer = _EndingMeanwhile(cursor, meanwhile) if meanwhile is not None else None
    with cursor.copy(statement, writer=writer) as copy:
        for row in rows:
            copy.write_row(row)


class _EndingMeanwhile(LibpqWriter):
    """psycopg's writer, but for its end: it sends the end of the data, runs ``meanwhile``,
    and only then waits for the server's answer."""

    def __init__(self, cursor: psycopg.Cursor[Any], meanwhile: Callable[[], None]) -> None:
        super().__init__(cursor)
        self.meanwhile = meanwhile

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:  # psycopg's way: the server is told the copy failed, and why
            super().finish(exc)
            return
        pgconn = self.connection.pgconn
        try:
            self.connection.wait(_send_end(pgconn))
            self.meanwhile()
        finally:  # whatever happened (Ctrl-C too), the answer is read: the connection is idle
            results = self.connection.wait(_results(pgconn))
        failed = [result for result in results if result.status != ExecStatus.COMMAND_OK]
        if failed:
            raise errors.error_from_result(failed[0], encoding=self.connection.info.encoding)


def _send_end(pgconn: PGconn) -> Steps:
    while pgconn.put_copy_end() == 0:  # a full output buffer: once the socket takes more
        yield Wait.W
    while pgconn.flush() != 0:
        yield Wait.W


def _results(pgconn: PGconn) -> Steps:
    """Every result of the statement, until libpq has no more (the connection is then idle),
    or the copy's own, again, if the end of the data never went out (as psycopg stops)."""
    results: list[PGresult] = []
    while True:
        pgconn.consume_input()
        while pgconn.is_busy():
            yield Wait.R
            pgconn.consume_input()
        result = pgconn.get_result()
        if result is None:
            return results
        results.append(result)
        if result.status == ExecStatus.COPY_IN:
            return results
