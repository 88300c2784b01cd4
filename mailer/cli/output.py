"""What `ls` and `show` print: a table on a terminal, tab-separated rows when piped, or --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from rich.table import Table

from mailer.bounces.fallout import Fallout
from mailer.cli.common import err, out
from mailer.models import ListSummary, Member
from mailer.send.campaign_editions import EditionCounts
from mailer.send.campaign_workers import Worker
from mailer.send.campaigns import CampaignInfo, Failure

LIST_COUNTS = ("confirmed", "unconfirmed", "unsubscribed", "bounced", "blocklisted")
DELIVERY_COUNTS = ("queued", "sent", "deferred", "failed", "skipped")
FREE_TEXT = ("name", "subject")


def local(stamp: str | None) -> str:
    """A stored UTC time stamp as the editor's clock reads it, to the minute; '-' if none; as
    stored if the clock cannot read it (past the calendar's edge in this zone)."""
    if not stamp:
        return "-"
    try:
        return datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M")
    except (OverflowError, ValueError):
        return stamp


def plural(count: int, noun: str, nouns: str = "") -> str:
    """``1 message``, ``2 messages``; ``nouns`` for a plural that is not ``noun`` + s."""
    return f"{count} {noun}" if count == 1 else f"{count} {nouns or noun + 's'}"


def rows(header: Sequence[str], lines: Iterable[Sequence[str]], empty: str = "") -> None:
    """A table with headers on a terminal (nothing if there are no rows); else tab-separated,
    header first, streamed. On a terminal times are local; piped they stay as stored, in UTC
    ISO 8601 (see ``time_cell``). With no rows, ``empty`` (if given) says so on stderr."""
    if not out.is_terminal:
        clean = str.maketrans("\t\n\r", "   ")
        sys.stdout.write("\t".join(header) + "\n")
        written = False
        for line in lines:
            sys.stdout.write("\t".join(cell.translate(clean) for cell in line) + "\n")
            written = True
        if not written and empty:
            err.print(empty, markup=False)
        return
    table = Table(box=None, header_style="bold")
    for title in header:  # only free text (names, subjects) gives way on a narrow terminal
        free = title in FREE_TEXT
        table.add_column(title, no_wrap=not free, overflow="fold" if free else "ellipsis",
                         min_width=None if free else len(title))  # fmt: skip
    for line in lines:
        table.add_row(*line)
    if table.row_count:
        out.print(table)
    elif empty:
        err.print(empty, markup=False)


def time_cell(stamp: str | None) -> str:
    return local(stamp) if out.is_terminal else stamp or ""


def write_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def write_json_array(records: Iterable[dict[str, Any]]) -> None:
    """One JSON array, one record per line, written as it is read (a list can be large)."""
    sys.stdout.write("[")
    for i, record in enumerate(records):
        sys.stdout.write(("," if i else "") + "\n  " + json.dumps(record, ensure_ascii=False))
    sys.stdout.write("\n]\n")


# The --json records: their keys are documented in the README, so they stay as they are.
def list_record(summary: ListSummary) -> dict[str, Any]:
    found = summary.list
    return {
        "slug": found.slug,
        "name": found.name,
        "opt_in": found.opt_in,
        "public_archive": found.public_archive,
        "public_form": found.public_form,
        "created_at": found.created_at,
        "counts": {k: summary.counts[k] for k in LIST_COUNTS},
    }


def member_record(member: Member) -> dict[str, Any]:
    return {
        "email": member.email,
        "name": member.name,
        "status": member.status,
        "subscriber_status": member.subscriber_status,
        "attributes": member.attributes,
        "joined_at": member.joined_at,
        "changed_at": member.changed_at,
    }


def campaign_record(info: CampaignInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "list": info.list_slug,
        "lists": list(info.lists),
        "segment": info.segment,
        "subject": info.subject,
        "status": info.status,
        "reason": info.reason,
        "report": info.report_path,
        "rate": info.settings.get("rate"),
        "concurrency": info.settings.get("concurrency"),
        "in_flight_limit": info.settings.get("in_flight_limit"),
        "created_at": info.created_at,
        "started_at": info.started_at,
        "finished_at": info.finished_at,
        "scheduled_at": info.scheduled_at,
        "kind": info.kind,
        "counts": {k: info.counts[k] for k in DELIVERY_COUNTS},
    }


def failure_record(failure: Failure) -> dict[str, Any]:
    return {
        "email": failure.email,
        "status": failure.status,
        "code": failure.code,
        "attempts": failure.attempts,
        "error": failure.error,
    }


def edition_record(edition: EditionCounts) -> dict[str, Any]:
    return {
        "lang": edition.lang,
        "subject": edition.subject,
        "default": edition.default,
        "counts": {k: edition.counts[k] for k in DELIVERY_COUNTS},
    }


def campaign_detail(
    info: CampaignInfo,
    failures: Sequence[Failure],
    fallout: Sequence[Fallout],
    editions: Sequence[EditionCounts] = (),
    workers: Sequence[Worker] = (),
) -> dict[str, Any]:
    return {
        **campaign_record(info),
        "editions": [edition_record(e) for e in editions],
        "workers": [
            {
                "name": w.name,
                "started_at": w.started_at,
                "seen_at": w.seen_at,
                "finished_at": w.finished_at or None,
                "counts": w.counts,
            }
            for w in workers
        ],
        "failures": [failure_record(f) for f in failures],
        "fallout": [
            {"at": e.at, "kind": e.kind, "email": e.email, "detail": e.detail} for e in fallout
        ],
    }
