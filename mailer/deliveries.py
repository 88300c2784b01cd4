"""Campaigns in SQLite: the recipient snapshot, the queue of pending deliveries, batched results."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mailer.errors import NotFoundError
from mailer.models import MailingList
from mailer.send_types import Recipient, Result
from mailer.store import Store, now

PENDING = ("queued", "deferred")


@dataclass(frozen=True, slots=True)
class CampaignInfo:
    id: int
    list_slug: str
    subject: str
    report_path: str
    source: str
    status: str
    reason: str
    settings: dict[str, Any]
    created_at: str
    started_at: str | None
    finished_at: str | None
    counts: dict[str, int]

    @property
    def pending(self) -> int:
        return self.counts["queued"] + self.counts["deferred"]


@dataclass(frozen=True, slots=True)
class Failure:
    email: str
    status: str
    attempts: int
    code: int | None
    error: str


class Campaigns:
    """Create campaigns with their snapshot, and read them back for `campaigns ls/show`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def create(
        self,
        mailing_list: MailingList,
        subject: str,
        report_path: str,
        source: str,
        settings: dict[str, Any],
    ) -> int:
        """Store the campaign and snapshot its recipients (confirmed, active) in one transaction."""
        digest = hashlib.sha256(source.encode()).hexdigest()
        with self.store.transaction() as db:
            cursor = db.execute(
                "INSERT INTO campaigns (list_id, list_slug, subject, report_path, source,"
                " source_sha256, settings, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (mailing_list.id, mailing_list.slug, subject, report_path, source, digest,
                 json.dumps(settings), now()),
            )  # fmt: skip
            campaign_id = int(cursor.lastrowid or 0)
            db.execute(
                "INSERT INTO deliveries (campaign_id, subscriber_id) SELECT ?, s.id" + ELIGIBLE,
                (campaign_id, mailing_list.id),
            )
        return campaign_id

    def get(self, campaign_id: int) -> CampaignInfo:
        found = self._select("WHERE c.id = ?", (campaign_id,))
        if not found:
            raise NotFoundError("campaign", str(campaign_id), "see `mailer campaigns ls`")
        return found[0]

    def all(self) -> list[CampaignInfo]:
        return self._select("", ())

    def _select(self, where: str, params: Sequence[Any]) -> list[CampaignInfo]:
        rows = self.store._query(
            "SELECT c.id, c.list_slug, c.subject, c.report_path, c.source, c.status, c.reason,"
            " c.settings, c.created_at, c.started_at, c.finished_at,"
            " (SELECT json_group_object(status, n) FROM (SELECT status, COUNT(*) AS n"
            "  FROM deliveries WHERE campaign_id = c.id GROUP BY status))"
            f" FROM campaigns c {where} ORDER BY c.id",
            params,
        )
        infos = []
        for r in rows:
            counts = dict.fromkeys(("queued", "sent", "deferred", "failed", "skipped"), 0)
            counts.update(json.loads(r[11] or "{}"))
            infos.append(
                CampaignInfo(
                    r[0],
                    r[1],
                    r[2],
                    r[3],
                    r[4],
                    r[5],
                    r[6],
                    json.loads(r[7]),
                    r[8],
                    r[9],
                    r[10],
                    counts,
                )
            )
        return infos

    def failures(self, campaign_id: int, limit: int = 50) -> list[Failure]:
        rows = self.store._query(
            "SELECT s.email, d.status, d.attempts, d.last_code, d.last_error FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ?"
            " AND d.status IN ('failed', 'deferred') ORDER BY d.status, s.email LIMIT ?",
            (campaign_id, limit),
        )
        return [Failure(*row) for row in rows]

    def log(self, campaign_id: int, statuses: Sequence[str] = PENDING) -> CampaignLog:
        info = self.get(campaign_id)
        return CampaignLog(self.store, statuses, campaign_id=info.id)

    def new_log(
        self,
        mailing_list: MailingList,
        subject: str,
        report_path: str,
        source: str,
        settings: dict[str, Any],
    ) -> CampaignLog:
        """A log whose campaign and snapshot are created by ``start()``: only once the server
        has answered, so an unreachable server leaves no campaign behind."""

        def create() -> int:
            return self.create(mailing_list, subject, report_path, source, settings)

        return CampaignLog(self.store, PENDING, create=create)


class CampaignLog:
    """The pipeline's delivery log for one stored campaign."""

    def __init__(
        self,
        store: Store,
        statuses: Sequence[str],
        *,
        campaign_id: int = 0,
        create: Callable[[], int] | None = None,
    ) -> None:
        self.store, self.statuses = store, json.dumps(list(statuses))
        self.campaign_id, self.create = campaign_id, create

    def count(self) -> int:
        row = self.store._query_one(
            "SELECT COUNT(*) FROM deliveries WHERE campaign_id = ?"
            " AND status IN (SELECT value FROM json_each(?))",
            (self.campaign_id, self.statuses),
        )
        return int(row[0]) if row else 0

    def start(self) -> None:
        if self.create is not None and not self.campaign_id:
            self.campaign_id = self.create()
        with self.store.transaction() as db:
            db.execute(
                "UPDATE campaigns SET status = 'sending', reason = '',"
                " started_at = COALESCE(started_at, ?) WHERE id = ?",
                (now(), self.campaign_id),
            )

    def pending(self, after: int, limit: int) -> list[Recipient]:
        rows = self.store._query(
            "SELECT s.id, s.email, s.name, s.attributes, s.smtputf8, d.attempts,"
            " COALESCE(m.status = 'confirmed', 0) AND s.status = 'active'"
            " FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id"
            " JOIN campaigns c ON c.id = d.campaign_id"
            " LEFT JOIN memberships m ON m.list_id = c.list_id AND m.subscriber_id = s.id"
            " WHERE d.campaign_id = ? AND d.status IN (SELECT value FROM json_each(?))"
            " AND d.subscriber_id > ? ORDER BY d.subscriber_id LIMIT ?",
            (self.campaign_id, self.statuses, after, limit),
        )
        return [
            Recipient(r[0], r[1], r[2], json.loads(r[3]), bool(r[4]), r[5], bool(r[6]))
            for r in rows
        ]

    def record(self, results: Sequence[Result]) -> None:
        stamp = now()
        campaign = self.campaign_id
        with self.store.transaction() as db:
            db.executemany(
                "UPDATE deliveries SET status = ?, attempts = ?, last_code = ?, last_error = ?,"
                " reply = ?, message_id = ?, sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END"
                " WHERE campaign_id = ? AND subscriber_id = ?",
                [(r.status, r.attempts, r.code or None, "" if r.status == "sent" else r.text,
                  r.text, r.message_id, r.status, stamp, campaign, r.subscriber_id)
                 for r in results],
            )  # fmt: skip
            bounced = [r for r in results if r.bounced]
            if bounced:
                db.executemany(
                    "UPDATE subscribers SET status = 'bounced', updated_at = ? WHERE id = ?",
                    [(stamp, r.subscriber_id) for r in bounced],
                )
                db.executemany(
                    "INSERT INTO events (at, kind, subscriber_id, list_id, campaign_id, detail)"
                    " SELECT ?, 'bounced', ?, list_id, id, ? FROM campaigns WHERE id = ?",
                    [(stamp, r.subscriber_id, f"{r.code} {r.text}", campaign) for r in bounced],
                )  # fmt: skip

    def finish(self, stopped: bool, reason: str = "") -> None:
        with self.store.transaction() as db:
            queued = db.execute(
                "SELECT COUNT(*) FROM deliveries WHERE campaign_id = ? AND status = 'queued'",
                (self.campaign_id,),
            ).fetchone()[0]
            status = "paused" if stopped or queued else "done"
            if status == "paused" and not reason:
                reason = f"{queued} not sent yet"
            db.execute(
                "UPDATE campaigns SET status = ?, reason = ?,"
                " finished_at = CASE WHEN ? = 'done' THEN ? ELSE finished_at END WHERE id = ?",
                (status, reason, status, now(), self.campaign_id),
            )


ELIGIBLE = (
    " FROM memberships m JOIN subscribers s ON s.id = m.subscriber_id WHERE m.list_id = ?"
    " AND m.status = 'confirmed' AND s.status = 'active'"
)


def eligible(store: Store, mailing_list: MailingList) -> Iterator[Recipient]:
    """Stream the readers a new campaign would go to now (confirmed and active): a dry run."""
    sql = "SELECT s.id, s.email, s.name, s.attributes, s.smtputf8" + ELIGIBLE + " ORDER BY s.id"
    for r in store.db.execute(sql, (mailing_list.id,)):
        yield Recipient(r[0], r[1], r[2], json.loads(r[3]), bool(r[4]))


def count_eligible(store: Store, mailing_list: MailingList) -> int:
    row = store._query_one("SELECT COUNT(*)" + ELIGIBLE, (mailing_list.id,))
    return int(row[0]) if row else 0


def find_subscriber(store: Store, email: str) -> Recipient | None:
    row = store._query_one(
        "SELECT id, email, name, attributes, smtputf8 FROM subscribers WHERE email = ?", (email,)
    )
    return Recipient(row[0], row[1], row[2], json.loads(row[3]), bool(row[4])) if row else None


class MemoryLog:
    """A delivery log kept in memory: for test sends, which are not recorded against a list."""

    def __init__(self, recipients: Sequence[Recipient]) -> None:
        self.recipients = sorted(recipients, key=lambda r: r.subscriber_id)
        self.results: list[Result] = []

    def start(self) -> None:
        return None

    def pending(self, after: int, limit: int) -> list[Recipient]:
        return [r for r in self.recipients if r.subscriber_id > after][:limit]

    def record(self, results: Sequence[Result]) -> None:
        self.results.extend(results)

    def finish(self, stopped: bool, reason: str = "") -> None:
        return None
