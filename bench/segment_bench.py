"""Segment benchmark: 1,000,000 readers on one list, the seconds typical --where segments take."""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailer.db.sqlite import SqliteDatabase as Database
from mailer.send.recipients import audience, count_eligible

SEGMENTS = [
    "city = 'Paris' and tag = 'steward'",
    "subscribed_before = 2021-01-01",
    "lang in ('fr', 'de') and domain = 'example7.org'",
    "age >= 60 and not tag = 'lapsed'",
    "name contains 'lov' or role = 'editor'",
]
CITIES = ["Paris", "Lyon", "Haworth", "Sevilla", "Kraków", "London", "Bergen", "Chengdu"]
NAMES = ["Zoë Brontë", "José Álvarez", "Łukasz Nowak", "Ada Lovelace", "Søren Ødegaard", "Li Wei"]
ROLES = ["reader", "editor", "steward", "sponsor"]
LANGS = ["en", "fr", "de", "es", ""]
TAGS = [("steward", 7), ("reader", 3), ("lapsed", 11)]  # a tag for every n-th reader
START = datetime(2019, 1, 1, tzinfo=UTC)
TAGS_TAG = "CREATE INDEX tags_tag ON tags(tag, subscriber_id)"  # as the schema makes it


def readers(rows: int) -> Iterator[tuple[object, ...]]:
    rng = random.Random(7)
    for i in range(1, rows + 1):
        attributes = {
            "city": rng.choice(CITIES),
            "age": str(18 + i % 63),
            "role": rng.choice(ROLES),
        }
        stamp = (START + timedelta(seconds=rng.randrange(7 * 365 * 86400))).isoformat()
        yield (i, f"reader{i}@example{i % 97}.org", rng.choice(NAMES), json.dumps(attributes),
               rng.choice(LANGS), stamp)  # fmt: skip


def build(database: Database, rows: int) -> None:
    db = database.connection
    db.execute("PRAGMA synchronous = OFF")
    db.execute("BEGIN")
    db.execute("INSERT INTO lists (id, slug, name, opt_in, created_at) VALUES (1, 'bench',"
               " 'Bench', 'single', '2019-01-01T00:00:00+00:00')")  # fmt: skip
    db.executemany(
        "INSERT INTO subscribers (id, email, name, attributes, lang, created_at, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            (i, email, name, attrs, lang, at, at)
            for i, email, name, attrs, lang, at in readers(rows)
        ),
    )
    db.execute(
        "INSERT INTO memberships (list_id, subscriber_id, status, updated_at, joined_at,"
        " confirmed_at, source) SELECT 1, id, CASE WHEN id % 10 != 3 THEN 'confirmed'"
        " ELSE 'unconfirmed' END, created_at, created_at,"
        " CASE WHEN id % 10 != 3 THEN created_at ELSE '' END, 'import:bench.csv' FROM subscribers"
    )
    for tag, every in TAGS:
        db.execute("INSERT INTO tags SELECT id, ? FROM subscribers WHERE id % ? = 0", (tag, every))
    db.execute("COMMIT")  # no ANALYZE: mailer never runs it, so the planner works without stats


def timed(database: Database, text: str, repeat: int) -> tuple[int, float]:
    """(readers picked, best seconds of ``repeat`` runs) for one segment ("" for none), as a
    send picks them: the expression checked against the list's attributes and compiled, then
    its readers counted, as `send --dry-run` counts them."""
    best, count = float("inf"), 0
    for _ in range(repeat):
        start = time.perf_counter()
        chosen = audience(database, ["bench"], text or None)
        count = count_eligible(database, chosen)
        best = min(best, time.perf_counter() - start)
    return count, best


def column(database: Database, repeat: int, *changes: str) -> dict[str, tuple[int, float]]:
    """Each segment timed after ``changes`` (CREATE or DROP INDEX)."""
    for sql in changes:
        database.connection.execute(sql)
    return {text: timed(database, text, repeat) for text in ["", *SEGMENTS]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    parser.add_argument("--index", action="append", default=[], help="a CREATE INDEX to try")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = Database(Path(folder) / "mailer.db")
        start = time.perf_counter()
        build(database, options.rows)
        print(f"{options.rows:,} readers on one list, built in {time.perf_counter() - start:.0f} s")
        columns = {
            "no tags_tag": column(database, options.repeat, "DROP INDEX tags_tag"),
            "schema": column(database, options.repeat, TAGS_TAG),
        }
        if options.index:
            columns["+ --index"] = column(database, options.repeat, *options.index)
        database.close()
    width = max(len(text) for text in SEGMENTS)
    print(f"{'segment (seconds, best of ' + str(options.repeat) + ')':<{width}}  {'readers':>9}"
          + "".join(f"  {label:>11}" for label in columns))  # fmt: skip
    for text in ["", *SEGMENTS]:
        count = columns["schema"][text][0]
        times = "".join(f"  {found[text][1]:>11.3f}" for found in columns.values())
        print(f"{text or '(no segment)':<{width}}  {count:>9,}{times}")


if __name__ == "__main__":
    main()
