"""Campaigns in the database: created with editions and recipients, read back, the public ones."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from mailer.compose.editions import primary
from mailer.db.database import IN_JSON, MAX_ID, Connection, Database, as_json, now
from mailer.errors import InputError, NotFoundError
from mailer.models import MailingList
from mailer.send import campaign_editions
from mailer.send.campaign_editions import ArchivedEdition, StoredEdition
from mailer.send.deliveries import PENDING, CampaignLog
from mailer.send.recipients import Audience, snapshot


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
    lists: tuple[str, ...] = ()  # every list it went to; list_slug is the first
    segment: str = ""  # the --where expression, if one narrowed them
    kind: str = "issue"  # or "welcome": a list's welcome, its deliveries added as readers join
    scheduled_at: str | None = None  # UTC ISO 8601, for a campaign sent at a set time

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


def source_digest(source: str) -> str:
    """How a campaign keeps its report's text to find it again: its SHA-256, in hex."""
    return hashlib.sha256(source.encode()).hexdigest()


# The latest issue of a report to one of these lists that sent to someone, or still may.
SAME = (
    "SELECT c.id FROM campaigns c WHERE c.source_sha256 = ? AND c.kind = 'issue' AND (c.status"
    " IN ('draft', 'scheduled', 'sending', 'paused') OR EXISTS (SELECT 1 FROM deliveries d"
    " WHERE d.campaign_id = c.id AND d.status = 'sent')) AND EXISTS (SELECT 1 FROM"
    f" campaign_lists l WHERE l.campaign_id = c.id AND l.list_slug IN {IN_JSON})"
    " ORDER BY c.id DESC LIMIT 1"
)


class Campaigns:
    """Create campaigns with their snapshot, and read them back for `campaigns ls/show`."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def create(
        self,
        chosen: Audience,
        subject: str,
        report_path: str,
        source: str,
        settings: dict[str, Any],
        archive_html: str = "",
        editions: Sequence[StoredEdition] = (),
        edition_of: tuple[str, Sequence[str]] = ("''", ()),
        files: Mapping[str, bytes] | None = None,
        kind: str = "issue",
        scheduled_at: str | None = None,
        once: bool = False,
    ) -> int:
        """Store the campaign, with its archived copy (HTML as the public archive serves it),
        its lists and segment, its editions, and snapshot its recipients, each with the
        edition ``edition_of`` (an SQL expression of ``s.lang``) picks, in one transaction.
        A campaign ``scheduled_at`` a time (status scheduled), or a welcome, has no recipients
        yet: they are taken when it starts, or as readers join. ``once``: refuse an issue that
        went, or may still go, to one of its lists (another send stored it since the check)."""
        digest = source_digest(source)
        first, segment = chosen.lists[0], chosen.segment.text if chosen.segment else ""
        status = "scheduled" if scheduled_at else "draft"
        slugs = [found.slug for found in chosen.lists]
        with self.database.transaction() as db:  # the write lock: one such check at a time
            if once and kind == "issue" and (earlier := self.latest_issue(source, slugs, db)):
                raise InputError(
                    f"{report_path}: another send stored it for {chosen.describe()} meanwhile,"
                    f" as campaign {earlier}; --again sends it anyway"
                )
            cursor = db.execute(
                "INSERT INTO campaigns (list_id, list_slug, subject, report_path, source,"
                " source_sha256, settings, created_at, archive_html, segment, status, kind,"
                " scheduled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (first.id, first.slug, subject, report_path, source, digest,
                 json.dumps(settings), now(), archive_html, segment, status, kind, scheduled_at),
            )  # fmt: skip
            campaign_id = int(cursor.fetchone()[0])
            campaign_editions.store(db, campaign_id, editions)
            if files is not None:
                campaign_editions.store_files(db, campaign_id, files)
            readers_now = kind == "issue" and not scheduled_at
            snapshot(db, campaign_id, chosen, edition_of, readers=readers_now)
        if readers_now:
            self.database.analyze("deliveries")
        return campaign_id

    def widen_bound(self, campaign_id: int, in_flight_limit: int) -> None:
        """A run with more in flight than the campaign recorded (a resume given more
        connections): the bound on what a crash may send twice grows to match it."""
        with self.database.transaction() as db:
            widen(db, campaign_id, in_flight_limit)

    def get(self, campaign_id: int) -> CampaignInfo:
        found = self._select("WHERE c.id = ?", (campaign_id,))
        if not found:
            raise NotFoundError("campaign", str(campaign_id), "see `mailer campaigns ls`")
        return found[0]

    def all(self) -> list[CampaignInfo]:
        return self._select("", ())

    def latest_issue(
        self, source: str, slugs: Iterable[str], db: Connection | None = None
    ) -> int | None:
        """The latest issue of this report ``source`` to one of the lists ``slugs`` that sent
        to someone, or still may; one cancelled (or finished) with nothing sent does not
        count. Read on ``db`` inside a write transaction, else on the database."""
        params = (source_digest(source), as_json(list(slugs)))
        row = db.execute(SAME, params).fetchone() if db else self.database.query_one(SAME, params)
        return int(row[0]) if row else None

    def _select(self, where: str, params: Sequence[Any]) -> list[CampaignInfo]:
        rows = self.database.query(
            "SELECT c.id, c.list_slug, c.subject, c.report_path, c.source, c.status, c.reason,"
            " c.settings, c.created_at, c.started_at, c.finished_at,"
            " (SELECT json_group_object(status, n) FROM (SELECT status, COUNT(*) AS n"
            "  FROM deliveries WHERE campaign_id = c.id GROUP BY status) AS counts),"
            " (SELECT json_group_array(list_slug) FROM (SELECT list_slug FROM campaign_lists"
            "  WHERE campaign_id = c.id ORDER BY position) AS slugs),"
            " c.segment, c.kind, c.scheduled_at"
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
                    tuple(json.loads(r[12] or "[]")) or (r[1],),
                    r[13],
                    r[14],
                    r[15],
                )
            )
        return infos

    def failures(self, campaign_id: int, limit: int | None = 50) -> list[Failure]:
        """Failed, then deferred deliveries, by address; the first ``limit`` (None: all)."""
        rows = self.database.query(
            "SELECT s.email, d.status, d.attempts, d.last_code, d.last_error FROM deliveries d"
            " JOIN subscribers s ON s.id = d.subscriber_id WHERE d.campaign_id = ?"
            " AND d.status IN ('failed', 'deferred') ORDER BY d.status, s.email LIMIT ?",
            (campaign_id, MAX_ID if limit is None else limit),
        )
        return [Failure(*row) for row in rows]

    def log(self, campaign_id: int, statuses: Sequence[str] = PENDING) -> CampaignLog:
        info = self.get(campaign_id)
        return CampaignLog(self.database, info.id, statuses)


@dataclass(frozen=True, slots=True)
class ArchivedCampaign:
    """A sent campaign of a public list that has an archived copy (campaigns stored before copies
    were have none), as the online archive shows it; ``html`` is read for one campaign only."""

    id: int
    subject: str
    published: str
    source: str
    report_path: str
    list: MailingList
    html: str = ""
    editions: tuple[ArchivedEdition, ...] = ()  # each language; none for older campaigns

    def edition(self, wanted: Sequence[str]) -> ArchivedEdition:
        """The edition a visitor who reads ``wanted`` (most preferred first) is shown: for the
        first language it has, the same tag, else the same primary language (as a reader is
        sent theirs); else the default."""
        for tag in wanted:
            exact = [e for e in self.editions if e.lang.lower() == tag.lower()]
            near = [e for e in self.editions if primary(e.lang) == primary(tag)]
            if exact or near:
                return (exact or near)[0]
        return self.editions[0] if self.editions else ArchivedEdition("", self.subject, "")


def public_campaigns(database: Database, limit: int = 100) -> list[ArchivedCampaign]:
    """Campaigns of public lists that reached at least one reader, newest first (no HTML),
    with their editions."""
    found = _archived(database, "''", "", (limit,))
    editions = campaign_editions.archived(database, [c.id for c in found])
    return [replace(c, editions=editions.get(c.id, ())) for c in found]


def public_campaign(
    database: Database, campaign_id: int, lang: str = ""
) -> ArchivedCampaign | None:
    """One of them, with the stored HTML copy of its edition in ``lang`` ('': the default)."""
    found = _archived(database, "c.archive_html", "AND c.id = ?", (campaign_id, 1))
    if not found or not lang:
        return found[0] if found else None
    html = campaign_editions.archived_html(database, campaign_id, lang)
    return replace(found[0], html=html) if html else None


def _archived(
    database: Database, html: str, where: str, params: Sequence[Any]
) -> list[ArchivedCampaign]:
    rows = database.query(
        f"SELECT c.id, c.subject, c.started_at, c.source, c.report_path, {html},"
        " l.id, l.slug, l.name, l.opt_in, l.public_archive"
        " FROM campaigns c JOIN lists l ON l.id = c.list_id"
        " WHERE l.public_archive = 1 AND c.kind = 'issue' AND c.status != 'cancelled'"
        " AND c.archive_html != ''"
        " AND c.started_at IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries d"
        f"  WHERE d.campaign_id = c.id AND d.status = 'sent') {where}"
        " ORDER BY c.started_at DESC, c.id DESC LIMIT ?",
        params,
    )
    return [
        ArchivedCampaign(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            MailingList(r[6], r[7], r[8], r[9] == "double", True),
            r[5],
        )
        for r in rows
    ]


def widen(db: Connection, campaign_id: int, in_flight_limit: int) -> None:
    """Raise the campaign's recorded bound on what a crash may send twice to
    ``in_flight_limit``, in the caller's transaction; it never narrows."""
    change_settings(db, campaign_id, lambda settings: raised_bound(settings, in_flight_limit))


def raised_bound(settings: dict[str, Any], in_flight_limit: int) -> None:
    settings["in_flight_limit"] = max(in_flight_limit, int(settings.get("in_flight_limit", 0)))


def change_settings(
    db: Connection, campaign_id: int, change: Callable[[dict[str, Any]], None]
) -> None:
    """Read the campaign's settings, ``change`` them, and write them back if they changed."""
    row = db.execute("SELECT settings FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
    settings = json.loads(row[0] or "{}")
    before = json.dumps(settings)
    change(settings)
    if json.dumps(settings) != before:
        db.execute("UPDATE campaigns SET settings = ? WHERE id = ?",
                   (json.dumps(settings), campaign_id))  # fmt: skip
