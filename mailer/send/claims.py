"""Many processes on one campaign: each claims batches of queued deliveries under a lease."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from mailer.db.database import IN_JSON, Connection, Database, as_json
from mailer.send.campaign_workers import join_bound
from mailer.send.deliveries import CampaignLog, conclude, queued_in, requeue
from mailer.send.types import Delivery, Result, Stop
from mailer.times import stamp

# A claim takes the next queued deliveries nobody holds, or whose holder's lease ran out (it
# died). PostgreSQL skips the rows another worker is claiming at that moment (SKIP LOCKED), so
# workers never wait on each other; SQLite's claims are one at a time under its write lock.
# The batch is chosen once (MATERIALIZED): a plan that ran the choice again for each row it
# updates would, with SKIP LOCKED, both take longer and take other rows.
# A claim looks past ``since``, the last reader this worker claimed: where PostgreSQL's
# statistics still say the campaign's rows are queued, it may walk an index in reader order from
# the first reader, over every one already sent (48 ms a claim half-way through 200,000).
CLAIM = (
    "WITH batch AS MATERIALIZED (SELECT subscriber_id FROM deliveries"
    " WHERE campaign_id = ? AND status = 'queued' AND lease_until < ? AND subscriber_id > ?"
    " ORDER BY subscriber_id LIMIT ?{lock})"
    " UPDATE deliveries SET claimed_by = ?, lease_until = ?"
    " WHERE campaign_id = ? AND subscriber_id IN (SELECT subscriber_id FROM batch)"
    " RETURNING subscriber_id"
)
LOCK = {"sqlite": "", "postgresql": " FOR UPDATE SKIP LOCKED"}
ROW_LOCK = {"sqlite": "", "postgresql": " FOR UPDATE"}
# Whether a claim would find anything: read first, so that a worker waiting for the others'
# last batches (or a dead one's lease) looks without a write transaction each time.
CLAIMABLE = (
    "SELECT 1 FROM deliveries WHERE campaign_id = ? AND status = 'queued' AND lease_until < ?"
    " LIMIT 1"
)
# Seconds, at most, between looks for claims that came free: at a campaign's end the last
# workers wait for the others' last batches, and the one that finds nothing left ends it.
POLL = 0.1
# The workers that share a campaign's rate: those holding claims, and those just started that
# have yet to claim (holding -1: their first claim follows at once); not those waiting at the
# end for claims to come free, which send nothing.
ALIVE = (
    "SELECT COUNT(*) FROM campaign_workers WHERE campaign_id = ? AND finished_at = ''"
    " AND seen_at >= ? AND (holding > 0 OR (holding < 0 AND seen_at >= ?))"
)
STARTING = 5.0  # seconds a worker started counts as about to claim
COUNT_AGAIN = 0.25  # seconds between counts of the workers sharing a rate


def worker_name() -> str:
    """This process, as `campaigns show` lists it: host, process id, and a random tag (two
    containers may share a host name and a process id)."""
    return f"{socket.gethostname()}:{os.getpid()}-{os.urandom(2).hex()}"


class ClaimLog(CampaignLog):
    """The delivery log of one of a campaign's workers: ``pending`` claims what it returns for
    ``lease`` seconds, renewed while the worker records; the campaign's ``rate`` is shared by
    the workers alive; the last one out finishes the campaign."""

    def __init__(
        self,
        database: Database,
        campaign_id: int,
        worker: str,
        rate: float,
        lease: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        in_flight: int = 0,
    ) -> None:
        super().__init__(database, campaign_id, ("queued",))
        self.worker, self.shared, self.lease, self.clock = worker, rate, lease, clock
        self.in_flight = in_flight  # this worker's own bound: its connections and its batch
        self.recorder = worker
        self.alive = 1  # workers sending now (holding claims): they share the rate
        self.held: set[int] = set()
        # Claims go on past the last reader claimed; from the first one when that finds none,
        # and every quarter lease, for the claims that came free behind (a worker died, or
        # stopped): a dead worker's batch is taken within a quarter lease of its lease's end.
        self.since = 0
        self.swept = clock()
        self.renewed = self.counted = datetime.min.replace(tzinfo=UTC)
        self.found = False  # the last claim took some: no need to look before the next
        self.beat = False  # it has said it is alive since it started

    def _stamp(self, ahead: float = 0.0) -> str:
        return stamp(self.clock() + timedelta(seconds=ahead))

    def start(self) -> None:
        super().start()
        at = self._stamp()
        host, _, process = self.worker.rpartition(":")
        pid = process.partition("-")[0]
        with self.database.transaction() as db:
            # One at a time (SQLite: the write lock), so each counts those who joined before.
            db.execute(f"SELECT 1 FROM campaigns WHERE id = ?{ROW_LOCK[self.database.engine]}",
                       (self.campaign_id,))  # fmt: skip
            db.execute(
                "INSERT INTO campaign_workers (campaign_id, worker, host, pid, started_at,"
                " seen_at, holding) VALUES (?, ?, ?, ?, ?, ?, -1) ON CONFLICT (campaign_id,"
                " worker) DO UPDATE SET seen_at = excluded.seen_at, finished_at = '',"
                " holding = -1",
                (self.campaign_id, self.worker, host, int(pid) if pid.isdigit() else 0, at, at),
            )
            join_bound(db, self.campaign_id, self.worker, self.in_flight)

    def pending(self, after: int, limit: int) -> list[Delivery]:
        """Claim up to ``limit`` deliveries: the next queued ones nobody holds; under a shared
        rate, no more than this worker sends in half its lease."""
        share = self.rate()  # also keeps this worker's claims and says it is alive
        if share:
            limit = max(1, min(limit, int(share * self.lease / 2)))
        now, until = self._stamp(), self._stamp(self.lease)
        if not self.found and self.database.query_one(CLAIMABLE, (self.campaign_id, now)) is None:
            if not self.beat:  # started to find nothing: not about to claim, no share of the rate
                with self.database.transaction(exclusive=False) as db:
                    self._heartbeat(db, now)
            return []
        if (self.clock() - self.swept).total_seconds() >= self.lease / 4:
            self.since = 0
        with self.database.transaction(exclusive=False) as db:
            claimed = self._claim(db, now, until, limit)
            if not claimed and self.since:
                self.since = 0
                claimed = self._claim(db, now, until, limit)
            self.held.update(claimed)
            self._heartbeat(db, now)  # counted among those who send (rate() kept the leases)
        if claimed:
            self.since = claimed[-1]
        self.found = bool(claimed)
        if not claimed:
            return []
        return self.deliveries(  # read as a resume reads them
            f" AND d.subscriber_id IN {IN_JSON} ORDER BY d.subscriber_id", [as_json(claimed)]
        )

    def _claim(self, db: Connection, now: str, until: str, limit: int) -> list[int]:
        if not self.since:
            self.swept = self.clock()
        claim = CLAIM.format(lock=LOCK[self.database.engine])
        rows = db.execute(claim, (self.campaign_id, now, self.since, limit, self.worker, until,
                                  self.campaign_id)).fetchall()  # fmt: skip
        return sorted(int(row[0]) for row in rows)

    def _renew(self, db: Connection, now: str, until: str) -> None:
        """Keep what this worker still holds, then say it is alive."""
        self.renewed = self.clock()
        db.execute(
            f"UPDATE deliveries SET lease_until = ? WHERE campaign_id = ? AND subscriber_id"
            f" IN {IN_JSON} AND status = 'queued' AND claimed_by = ?",
            (until, self.campaign_id, as_json(sorted(self.held)), self.worker),
        )
        self._heartbeat(db, now)

    def _heartbeat(self, db: Connection, now: str) -> None:
        """Say this worker is alive, with how much it holds, and count those who are."""
        self.beat = True
        db.execute(
            "UPDATE campaign_workers SET seen_at = ?, holding = ? WHERE campaign_id = ?"
            " AND worker = ?",
            (now, len(self.held), self.campaign_id, self.worker),
        )
        self._count(db.execute(ALIVE, self._alive()).fetchone())

    def _alive(self) -> tuple[int, str, str]:
        return self.campaign_id, self._stamp(-self.lease), self._stamp(-STARTING)

    def _count(self, row: Sequence[Any] | None) -> None:
        self.counted = self.clock()
        self.alive = max(1, int(row[0]) if row else 1)

    def record(self, results: Sequence[Result]) -> bool:
        full = super().record(results)
        self.held.difference_update(result.subscriber_id for result in results)
        self._keep()
        return full

    def _keep(self) -> None:
        """Renew the claims at most once a second (and well within the lease)."""
        if (self.clock() - self.renewed).total_seconds() >= min(self.lease / 4, 1.0):
            now, until = self._stamp(), self._stamp(self.lease)
            with self.database.transaction(exclusive=False) as db:
                self._renew(db, now, until)

    def rate(self) -> float | None:
        """Asked before each message: the claims are kept while messages go out, even when
        no result has come back for a while; a shared rate's workers counted again often, so
        that one joining or ending moves the others' shares within COUNT_AGAIN seconds."""
        self._keep()
        if self.shared <= 0:
            return None
        if (self.clock() - self.counted).total_seconds() >= COUNT_AGAIN:
            self._count(self.database.query_one(ALIVE, self._alive()))
        return self.shared / self.alive

    def more(self) -> float | None:
        """Seconds until a claim held by another worker may come free; None when none is."""
        row = self.database.query_one(
            "SELECT MIN(lease_until) FROM deliveries WHERE campaign_id = ? AND status = 'queued'",
            (self.campaign_id,),
        )
        if row is None or row[0] is None:
            return None
        ends = datetime.fromisoformat(row[0]) if row[0] else self.clock()
        return min(POLL, max(0.05, (ends - self.clock()).total_seconds()))

    def _finish(self, stop: Stop | None, waiting: Sequence[int] = ()) -> None:
        """Give back what was claimed and not sent; the campaign is done when nothing is left,
        still sending while another worker is alive, else paused."""
        reason = "" if stop is None else str(stop)
        now = self._stamp()
        with self.database.transaction() as db:
            requeue(db, self.campaign_id, waiting)  # then given back with the rest it held
            db.execute(
                "UPDATE deliveries SET claimed_by = '', lease_until = '' WHERE campaign_id = ?"
                " AND claimed_by = ? AND status = 'queued'",
                (self.campaign_id, self.worker),
            )
            db.execute(
                "UPDATE campaign_workers SET seen_at = ?, finished_at = ? WHERE campaign_id = ?"
                " AND worker = ?",
                (now, now, self.campaign_id, self.worker),
            )
            queued = queued_in(db, self.campaign_id)
            others = db.execute(
                "SELECT COUNT(*) FROM campaign_workers WHERE campaign_id = ? AND finished_at = ''"
                " AND seen_at >= ?",
                (self.campaign_id, self._stamp(-self.lease)),
            ).fetchone()[0]
            if queued and others:
                return  # the others go on
            conclude(db, self.campaign_id, reason, now, queued)
