"""COPY into PostgreSQL with work done while the server stores the rows (db/postgres_copy.py)."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import errors
from psycopg.pq import TransactionStatus

from mailer.db import postgres_copy
from mailer.db.postgres_copy import copy_in

COLUMNS = ("list_id", "subscriber_id", "status", "updated_at")


@pytest.fixture
def connection(store_url: str) -> Any:
    """A connection to a new database with mailer's schema, one list and three readers."""
    with psycopg.connect(store_url, autocommit=True) as connection:
        connection.execute(
            "INSERT INTO lists (id, slug, name, opt_in, created_at)"
            " VALUES (1, 'w', 'W', 'single', '')"
        )
        connection.execute(
            "INSERT INTO subscribers (id, email, created_at, updated_at)"
            " SELECT n, 'r' || n || '@example.org', '', '' FROM generate_series(1, 3) n"
        )
        yield connection


def rows(*readers: int) -> list[tuple[object, ...]]:
    return [(1, reader, "confirmed", "2026-11-28T00:00:00Z") for reader in readers]


def members(connection: Any) -> list[int]:
    found = connection.execute("SELECT subscriber_id FROM memberships ORDER BY 1").fetchall()
    return [row[0] for row in found]


def test_meanwhile_runs_once_while_the_server_still_works_on_the_copy(connection: Any) -> None:
    states: list[TransactionStatus] = []
    copy_in(connection, "memberships", COLUMNS, rows(1, 2, 3),
            lambda: states.append(connection.pgconn.transaction_status))  # fmt: skip
    assert states == [TransactionStatus.ACTIVE]  # the COPY's answer not read yet
    assert members(connection) == [1, 2, 3]


def test_a_copy_the_server_refuses_is_its_error_and_the_connection_goes_on(
    connection: Any,
) -> None:
    ran: list[bool] = []
    connection.execute("BEGIN")
    with pytest.raises(errors.ForeignKeyViolation, match="subscriber_id"):
        copy_in(connection, "memberships", COLUMNS, rows(1, 99), lambda: ran.append(True))
    assert ran == [True]
    assert connection.pgconn.transaction_status == TransactionStatus.INERROR
    connection.execute("ROLLBACK")
    assert members(connection) == []


def test_an_error_in_meanwhile_leaves_the_connection_ready_for_the_rollback(
    connection: Any,
) -> None:
    def failing() -> None:
        raise KeyboardInterrupt

    connection.execute("BEGIN")
    with pytest.raises(KeyboardInterrupt):
        copy_in(connection, "memberships", COLUMNS, rows(1, 2), failing)
    assert connection.pgconn.transaction_status == TransactionStatus.INTRANS  # answer read
    connection.execute("ROLLBACK")
    assert members(connection) == []
    copy_in(connection, "memberships", COLUMNS, rows(3), lambda: None)
    assert members(connection) == [3]


def test_ctrl_c_while_the_end_is_sent_leaves_the_connection_ready_for_the_rollback(
    connection: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    sending = postgres_copy._send_end

    def interrupted(pgconn: Any) -> Any:
        yield from sending(pgconn)
        raise KeyboardInterrupt  # as Ctrl-C arriving while psycopg waits for the socket

    monkeypatch.setattr(postgres_copy, "_send_end", interrupted)
    connection.execute("BEGIN")
    with pytest.raises(KeyboardInterrupt):
        copy_in(connection, "memberships", COLUMNS, rows(1, 2), lambda: None)
    assert connection.pgconn.transaction_status == TransactionStatus.INTRANS  # answer read
    connection.execute("ROLLBACK")
    assert members(connection) == []


def test_without_meanwhile_it_is_psycopgs_own_copy(connection: Any) -> None:
    copy_in(connection, "memberships", COLUMNS, rows(2))
    assert members(connection) == [2]
