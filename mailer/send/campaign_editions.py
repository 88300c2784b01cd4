"""A campaign's editions in the database: stored, counted, read back to resume, archived copies."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from mailer.compose.editions import CompiledEditions, Edition
from mailer.compose.preview import archive_copy
from mailer.compose.report import parse_report
from mailer.db.database import Connection, Database
from mailer.errors import FileInputError

STATES = ("queued", "sent", "deferred", "failed", "skipped")


@dataclass(frozen=True, slots=True)
class StoredEdition:
    """One language of a campaign as it is stored: the default edition first."""

    lang: str
    subject: str
    report_path: str
    source: str
    archive_html: str = ""


@dataclass(frozen=True, slots=True)
class EditionCounts:
    """How many of a campaign's deliveries are in each state, for one edition."""

    lang: str
    subject: str
    default: bool
    counts: dict[str, int]


@dataclass(frozen=True, slots=True)
class ArchivedEdition:
    """An edition as the archive links it: its language, subject and path under the campaign
    ('' for the default edition, /fr for the others)."""

    lang: str
    subject: str
    path: str


def to_store(
    editions: Sequence[Edition], compiled: CompiledEditions, base_url: str, published: str = ""
) -> list[StoredEdition]:
    """Each edition as the campaign keeps it: its report, subject and archived copy, dated
    ``published`` (an ISO date; default today)."""
    return [StoredEdition(e.lang, e.report.subject, str(e.report.path), e.source,
                          archive_copy(compiled.editions[e.lang].campaign, base_url, published))
            for e in editions]  # fmt: skip


def store(db: Connection, campaign_id: int, editions: Sequence[StoredEdition]) -> None:
    db.executemany(
        "INSERT INTO campaign_editions (campaign_id, lang, position, subject, report_path,"
        " source, archive_html) VALUES (?, ?, ?, ?, ?, ?, ?)",
        [(campaign_id, e.lang, i, e.subject, e.report_path, e.source, e.archive_html)
         for i, e in enumerate(editions)],
    )  # fmt: skip


def store_files(db: Connection, campaign_id: int, files: Mapping[str, bytes]) -> None:
    """The images and attachments the editions read, kept with the campaign."""
    db.executemany(
        "INSERT INTO campaign_files (campaign_id, path, data) VALUES (?, ?, ?)",
        [(campaign_id, path, data) for path, data in files.items()],
    )


def stored_files(database: Database, campaign_id: int) -> dict[str, bytes]:
    rows = database.query(
        "SELECT path, data FROM campaign_files WHERE campaign_id = ?", (campaign_id,)
    )
    return {str(path): bytes(data) for path, data in rows}


def sources(database: Database, campaign_id: int) -> list[tuple[str, str, str]]:
    """(lang, report path, source) of each edition, the default first; [] for a campaign
    stored before editions were (its report is its one edition)."""
    rows = database.query(
        "SELECT lang, report_path, source FROM campaign_editions WHERE campaign_id = ?"
        " ORDER BY position",
        (campaign_id,),
    )
    return [(r[0], r[1], r[2]) for r in rows]


def counts(database: Database, campaign_id: int) -> list[EditionCounts]:
    """Deliveries per edition and state, editions in their order (the default first). A
    campaign stored before editions has one, in its report's language."""
    rows = database.query(
        "SELECT lang, subject, position FROM campaign_editions WHERE campaign_id = ?"
        " ORDER BY position",
        (campaign_id,),
    )
    editions = [(r[0], r[1]) for r in rows] or [_older(database, campaign_id)]
    found = database.query(
        "SELECT edition, status, COUNT(*) FROM deliveries WHERE campaign_id = ?"
        " GROUP BY edition, status",
        (campaign_id,),
    )
    tally = {lang: dict.fromkeys(STATES, 0) for lang, _ in editions}
    default = editions[0][0]
    for edition, status, number in found:
        tally.setdefault(edition or default, dict.fromkeys(STATES, 0))[status] += number
    shown = [EditionCounts(lang, subject, i == 0, tally[lang])
             for i, (lang, subject) in enumerate(editions)]  # fmt: skip
    known = {lang for lang, _ in editions}
    shown += [EditionCounts(lang, "", False, n) for lang, n in tally.items() if lang not in known]
    return shown


def _older(database: Database, campaign_id: int) -> tuple[str, str]:
    row = database.query_one(
        "SELECT source, report_path, subject FROM campaigns WHERE id = ?", (campaign_id,)
    )
    if row is None:
        return "", ""
    try:
        return parse_report(row[0], Path(row[1])).lang, row[2]
    except FileInputError:  # stored before front matter had its limits
        return "", row[2]


def archived(database: Database, ids: Sequence[int]) -> dict[int, tuple[ArchivedEdition, ...]]:
    """The editions of these campaigns that have an archived copy, the default first."""
    rows = database.query(
        "SELECT campaign_id, lang, subject, position FROM campaign_editions"
        " WHERE campaign_id IN (SELECT value FROM json_each(?)) AND archive_html != ''"
        " ORDER BY campaign_id, position",
        (json.dumps(list(ids)),),
    )
    found: dict[int, list[ArchivedEdition]] = {}
    for campaign_id, lang, subject, position in rows:
        path = "" if position == 0 else f"/{lang}"
        found.setdefault(campaign_id, []).append(ArchivedEdition(lang, subject, path))
    return {key: tuple(value) for key, value in found.items()}


def archived_html(database: Database, campaign_id: int, lang: str) -> str:
    """The archived copy of one edition other than the default ('' when it has none): the
    default is at /archive/{id} only, so that each copy has one address."""
    row = database.query_one(
        "SELECT archive_html FROM campaign_editions WHERE campaign_id = ? AND lang = ?"
        " AND position > 0",
        (campaign_id, lang),
    )
    return str(row[0]) if row else ""
