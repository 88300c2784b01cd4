"""Deliveries in the database: the pending queue, results written in batches; a test send's log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence

from mailer.audience.status import bounce_many
from mailer.audience.status.departures import DELETED as LIST_DELETED
from mailer.db.database import IN_JSON, Connection, Database, as_json, now
from mailer.errors import DiskFullError
from mailer.models import Reader
from mailer.send.recipients import reader
from mailer.send.types import Delivery, Result, Stop

PENDING = ("queued", "deferred")
# How many of a campaign's deliveries are queued (through the partial index of queued ones).
QUEUED = "SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status = 'queued'"
# A batch of results, each row (reader, status, attempts, code, error, reply, Message-ID); a
# row already sent stays sent. Each is credited to the worker that recorded it ('' for a plain
# run, even where a dead worker had claimed it). SQLite updates row by row in one transaction.
# PostgreSQL takes the batch as one statement over arrays: one plan and one round trip, where a
# statement per row cost 1.6x the time (the pipeline waits for it).
RECORD_EACH = (
    "UPDATE deliveries SET status = ?2, attempts = ?3, last_code = ?4, last_error = ?5,"
    " reply = ?6, message_id = ?7, sent_at = CASE WHEN ?2 = 'sent' THEN ?8 ELSE sent_at END,"
    " claimed_by = ?10 WHERE campaign_id = ?9 AND subscriber_id = ?1 AND status != 'sent'"
)
RECORD_ARRAYS = (
    "UPDATE deliveries d SET status = r.status, attempts = r.attempts, last_code = r.code,"
    " last_error = r.error, reply = r.reply, message_id = r.message_id,"
    " sent_at = CASE WHEN r.status = 'sent' THEN ? ELSE d.sent_at END, claimed_by = ?"
    " FROM unnest(CAST(? AS bigint[]), CAST(? AS text[]), CAST(? AS integer[]),"
    " CAST(? AS integer[]), CAST(? AS text[]), CAST(? AS text[]), CAST(? AS text[]))"
    " AS r(subscriber_id, status, attempts, code, error, reply, message_id)"
    " WHERE d.campaign_id = ? AND d.subscriber_id = r.subscriber_id AND d.status != 'sent'"
)


# Whether the reader of delivery d may still be sent this campaign: active, and a confirmed
# member of one of its lists.
ELIGIBLE = (
    "s.status = 'active' AND EXISTS (SELECT 1 FROM campaign_lists l JOIN memberships m"
    " ON m.list_id = l.list_id AND m.subscriber_id = s.id AND m.status = 'confirmed'"
    " WHERE l.campaign_id = d.campaign_id)"
)
LOOK_AGAIN = 0.5  # seconds between looks for readers who left since their page was read
EVENTS_A_LOOK = 10_000


class CampaignLog:
    """The pipeline's delivery log for one stored campaign."""

    recorder = ""  # the worker whose results these are ('' for a plain run)

    def __init__(self, database: Database, campaign_id: int, statuses: Sequence[str]) -> None:
        self.database, self.campaign_id = database, campaign_id
        self.seen, self.looked, self.gone = 0, 0.0, set[int]()  # see left()
        self.statuses = json.dumps(list(statuses))
        self.reserve = database.reserve()

    @property
    def where(self) -> str:
        return f"database {self.database.where}"

    def _write(self, write: Callable[[], None]) -> bool:
        """Run one write; on a full disk, give back the reserve and run it once more: True
        when the reserve had to be used (the run must stop now)."""
        try:
            write()
        except DiskFullError:
            if self.reserve is None or not self.reserve.release():
                raise
            write()
            return True
        return False

    def count(self) -> int:
        row = self.database.query_one(
            f"SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status IN {IN_JSON}",
            (self.campaign_id, self.statuses),
        )
        return int(row[0]) if row else 0

    def start(self) -> None:
        if self.reserve is not None:
            self.reserve.hold()  # no room even for it: the first write will say so
        row = self.database.query_one("SELECT MAX(id) FROM events")
        self.seen, self.looked = int(row[0] or 0) if row else 0, time.monotonic()
        with self.database.transaction() as db:
            db.execute(
                "UPDATE campaigns SET status = 'sending', reason = '',"
                " started_at = COALESCE(started_at, ?) WHERE id = ?",
                (now(), self.campaign_id),
            )

    def more(self) -> float | None:
        return None

    def rate(self) -> float | None:
        return None

    def left(self, reader_id: int) -> bool:
        """Whether the reader left since their page was read (unsubscribed, bounced, blocked,
        erased, off the campaign's lists, a list deleted): asked before each message goes. The
        events written since are looked at, at most every LOOK_AGAIN seconds, and the readers
        they name of this campaign checked again (all of its pending ones for a list deleted):
        one who came back meanwhile is sent after all."""
        if time.monotonic() - self.looked >= LOOK_AGAIN:
            self.looked = time.monotonic()
            events = self.database.query(
                "SELECT id, subscriber_id, kind FROM events WHERE id > ? ORDER BY id LIMIT ?",
                (self.seen, EVENTS_A_LOOK),
            )
            self.seen = events[-1][0] if events else self.seen
            named = sorted({row[1] for row in events if row[1] is not None})
            if any(row[1] is None and row[2] == LIST_DELETED for row in events):
                self.gone = self._ineligible(f" AND d.status IN {IN_JSON}",
                                             self.statuses)  # fmt: skip
            elif named:
                self.gone.difference_update(named)
                self.gone |= self._ineligible(
                    f" AND d.subscriber_id IN {IN_JSON}", json.dumps(named)
                )
        return reader_id in self.gone

    def _ineligible(self, where: str, values: str) -> set[int]:
        rows = self.database.query(
            "SELECT d.subscriber_id FROM deliveries d JOIN subscribers s ON s.id ="
            f" d.subscriber_id WHERE d.campaign_id = ?{where} AND NOT ({ELIGIBLE})",
            (self.campaign_id, values),
        )
        return {int(row[0]) for row in rows}

    def pending(self, after: int, limit: int) -> list[Delivery]:
        return self.peek(after, limit)

    def peek(self, after: int, limit: int) -> list[Delivery]:
        """The pending deliveries after the reader ``after``, taking nothing."""
        # s.id > ? says again what the join implies: PostgreSQL may merge-join the readers
        # in order, and without it walks them all from the first (16 ms a page half-way
        # through 200,000).
        return self.deliveries(" AND d.subscriber_id > ? AND s.id > ? ORDER BY d.subscriber_id"
                               " LIMIT ?", [after, after, limit])  # fmt: skip

    def deliveries(self, where: str, params: Sequence[object]) -> list[Delivery]:
        """The campaign's pending deliveries that also meet ``where``, with their readers."""
        # The reader's language is the edition the campaign gave them (older campaigns: none,
        # so their own, which finds the one edition those had).
        rows = self.database.query(
            "SELECT s.id, s.email, s.name, s.attributes, s.smtputf8,"
            f" CASE WHEN d.edition != '' THEN d.edition ELSE s.lang END, d.attempts, {ELIGIBLE}"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            f" WHERE d.campaign_id = ? AND d.status IN {IN_JSON}{where}",
            (self.campaign_id, self.statuses, *params),
        )
        return [Delivery(reader(r), r[6], bool(r[7])) for r in rows]

    def record(self, results: Sequence[Result]) -> bool:
        return self._write(lambda: self._record(results))

    def _record(self, results: Sequence[Result]) -> None:
        if not results:
            return
        stamp = now()
        campaign = self.campaign_id
        rows = [(r.subscriber_id, r.status, r.attempts, r.code or None,
                 "" if r.status == "sent" else r.text, r.text, r.message_id)
                for r in standing(results)]  # fmt: skip
        bounced = [(r.subscriber_id, f"{r.code} {r.text}") for r in results if r.bounced]
        postgres = self.database.engine == "postgresql"
        columns = (
            (stamp, self.recorder, *map(list, zip(*rows, strict=True)), campaign)
            if postgres
            else ()
        )
        if postgres and not bounced:
            self.database.execute(RECORD_ARRAYS, columns)  # one statement: its own transaction
            return
        # The campaign's own rows: their row locks are enough, so several workers record side
        # by side. A bounce changes a reader's status: the write lock.
        with self.database.transaction(exclusive=bool(bounced)) as db:
            if postgres:
                db.execute(RECORD_ARRAYS, columns)
            else:
                db.executemany(
                    RECORD_EACH, [(*row, stamp, campaign, self.recorder) for row in rows]
                )
            if bounced:
                bounce_many(db, bounced, campaign, stamp)

    def finish(self, stop: Stop | None, waiting: Sequence[int] = ()) -> None:
        try:
            self._write(lambda: self._finish(stop, waiting))
        finally:
            if self.reserve is not None:
                self.reserve.release()

    def _finish(self, stop: Stop | None, waiting: Sequence[int]) -> None:
        with self.database.transaction() as db:
            requeue(db, self.campaign_id, waiting)
            queued = queued_in(db, self.campaign_id)
            conclude(db, self.campaign_id, "" if stop is None else str(stop), now(), queued)


def standing(results: Sequence[Result]) -> list[Result]:
    """One result for each reader of a batch: the last, unless an earlier one was sent (a
    sent row stays sent). A deferral and its retry can share a batch, and one statement over
    arrays updates a row only once, with whichever of its rows PostgreSQL meets first."""
    kept: dict[int, Result] = {}
    for result in results:
        earlier = kept.get(result.subscriber_id)
        if earlier is None or earlier.status != "sent":
            kept[result.subscriber_id] = result
    return list(kept.values())


def queued_in(db: Connection, campaign_id: int) -> int:
    """How many of the campaign's deliveries are queued, in the caller's transaction."""
    row = db.execute(QUEUED, (campaign_id,)).fetchone()
    return int(row[0])


def requeue(db: Connection, campaign_id: int, waiting: Sequence[int]) -> None:
    """Deferrals whose retry a stop cut short go back to the queue: the campaign is then not
    done, and its next run sends them (their attempts so far kept)."""
    if waiting:
        db.execute(
            f"UPDATE deliveries SET status = 'queued' WHERE campaign_id = ? AND subscriber_id"
            f" IN {IN_JSON} AND status = 'deferred'",
            (campaign_id, as_json(waiting)),
        )


def conclude(db: Connection, campaign_id: int, reason: str, at: str, queued: int) -> str:
    """In the caller's transaction: the campaign is done when nothing is queued (even if a stop
    came meanwhile: nothing is left to resume), else paused with ``reason`` (by default, how
    many are left). Returns the status."""
    status = "paused" if queued else "done"
    reason = "" if status == "done" else reason or f"{queued} not sent yet"
    db.execute(
        "UPDATE campaigns SET status = ?, reason = ?,"
        " finished_at = CASE WHEN ? = 'done' THEN ? ELSE finished_at END WHERE id = ?",
        (status, reason, status, at, campaign_id),
    )
    return status


def find_reader(database: Database, email: str) -> Reader | None:
    row = database.query_one(
        "SELECT id, email, name, attributes, smtputf8, lang FROM subscribers WHERE email = ?",
        (email,),
    )
    return reader(row) if row else None


class MemoryLog:
    """A delivery log kept in memory: for test sends, which are not recorded against a list."""

    def __init__(self, readers: Sequence[Reader]) -> None:
        self.deliveries = [Delivery(r) for r in sorted(readers, key=lambda r: r.id)]
        self.results: list[Result] = []

    @property
    def where(self) -> str:
        return "memory"

    def start(self) -> None:
        return None

    def pending(self, after: int, limit: int) -> list[Delivery]:
        return [d for d in self.deliveries if d.reader.id > after][:limit]

    def record(self, results: Sequence[Result]) -> bool:
        self.results.extend(results)
        return False

    def left(self, reader_id: int) -> bool:
        return False

    def finish(self, stop: Stop | None, waiting: Sequence[int] = ()) -> None:
        return None

    def more(self) -> float | None:
        return None

    def rate(self) -> float | None:
        return None
