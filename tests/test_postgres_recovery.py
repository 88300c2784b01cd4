"""PostgreSQL back after its connections were cut (a restart): the next use works, and what a
reader's request logs or /healthz says never holds a token or the database's address."""

from __future__ import annotations

import psycopg

from mailer.db.postgres import PostgresDatabase
from mailer.web.site import route


def test_a_pooled_connection_the_server_ended_is_replaced_not_failed(postgres_url: str) -> None:
    PostgresDatabase(postgres_url).close()  # its connection waits in the pool
    with psycopg.connect(postgres_url, autocommit=True) as other:
        ended = other.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid != pg_backend_pid()"
        ).fetchall()
    assert ended and all(row[0] for row in ended)
    with PostgresDatabase(postgres_url) as database:  # before: "cannot reach it"
        assert database.query_one("SELECT 1") == (1,)


def test_a_logged_path_keeps_only_its_route() -> None:
    assert route("/p/p7.1.aZ5LQw_1KX0K3GAERPdiOw") == "/p/…"
    assert route("/u/u3.2.abcdef") == "/u/…"
    assert route("/archive/") == "/archive"
    assert route("/healthz") == "/healthz"
    assert route("/feed.xml") == "/feed.xml"
