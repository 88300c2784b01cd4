"""One reader's own data (GDPR articles 15 and 20): their lists and consent, events, deliveries."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mailer.db.database import Database
from mailer.models import Consent


@dataclass(frozen=True, slots=True)
class ListMembership:
    slug: str
    name: str
    status: str  # confirmed, unconfirmed, unsubscribed
    changed_at: str  # when this membership last changed
    consent: Consent  # how and when they joined and confirmed


@dataclass(frozen=True, slots=True)
class Event:
    at: str
    kind: str
    list: str  # the list's slug, '' when the event is about the reader everywhere
    campaign_id: int | None
    detail: str


@dataclass(frozen=True, slots=True)
class Delivery:
    campaign_id: int
    subject: str
    status: str  # queued, sent, deferred, failed, skipped
    sent_at: str
    attempts: int
    code: int | None  # the server's last reply code
    reply: str  # the server's last reply text
    message_id: str


@dataclass(frozen=True, slots=True)
class ReaderData:
    email: str
    name: str
    status: str  # everywhere: active, bounced, blocklisted, erased
    lang: str
    attributes: dict[str, Any]
    tags: tuple[str, ...]
    created_at: str
    updated_at: str
    lists: tuple[ListMembership, ...]
    events: tuple[Event, ...]
    deliveries: tuple[Delivery, ...]
    pending_address: tuple[str, str] | None = None  # a new address asked for, and when


def reader_data(database: Database, email: str) -> ReaderData | None:
    """Everything kept about the reader with this address, or None if there is none."""
    row = database.query_one(
        "SELECT id, email, name, status, lang, attributes, created_at, updated_at"
        " FROM subscribers WHERE email = ?",
        (email,),
    )
    if row is None:
        return None
    sid = row[0]
    tags = database.query("SELECT tag FROM tags WHERE subscriber_id = ? ORDER BY tag", (sid,))
    lists = database.query(
        "SELECT l.slug, l.name, m.status, m.updated_at, m.source, m.joined_at, m.confirmed_at,"
        " m.ip FROM memberships m JOIN lists l ON l.id = m.list_id WHERE m.subscriber_id = ?"
        " ORDER BY m.joined_at, l.slug",
        (sid,),
    )
    events = database.query(
        "SELECT e.at, e.kind, COALESCE(l.slug, ''), e.campaign_id, e.detail FROM events e"
        " LEFT JOIN lists l ON l.id = e.list_id WHERE e.subscriber_id = ? ORDER BY e.id",
        (sid,),
    )
    deliveries = database.query(
        "SELECT d.campaign_id, COALESCE(c.subject, ''), d.status, COALESCE(d.sent_at, ''),"
        " d.attempts, d.last_code, d.reply, d.message_id FROM deliveries d"
        " LEFT JOIN campaigns c ON c.id = d.campaign_id WHERE d.subscriber_id = ?"
        " ORDER BY d.campaign_id",
        (sid,),
    )
    pending = database.query_one(
        "SELECT email, requested_at FROM address_changes WHERE subscriber_id = ?"
        " AND confirmed_at = ''",
        (sid,),
    )
    return ReaderData(
        email=row[1], name=row[2], status=row[3], lang=row[4], attributes=json.loads(row[5]),
        tags=tuple(t[0] for t in tags), created_at=row[6], updated_at=row[7],
        lists=tuple(ListMembership(r[0], r[1], r[2], r[3], Consent(*r[4:8])) for r in lists),
        events=tuple(Event(*r) for r in events),
        deliveries=tuple(Delivery(*r) for r in deliveries),
        pending_address=(pending[0], pending[1]) if pending else None,
    )  # fmt: skip


def as_record(data: ReaderData) -> dict[str, Any]:
    """The stable JSON keys of `subscribers show --json` (documented in the README); times are
    UTC ISO 8601, null where there is none."""
    return {
        "email": data.email,
        "name": data.name,
        "status": data.status,
        "lang": data.lang or None,
        "attributes": data.attributes,
        "tags": list(data.tags),
        "created_at": data.created_at,
        "updated_at": data.updated_at,
        "pending_address": None
        if data.pending_address is None
        else {"email": data.pending_address[0], "requested_at": data.pending_address[1]},
        "lists": [
            {
                "list": m.slug,
                "name": m.name,
                "status": m.status,
                "changed_at": m.changed_at,
                "consent": {
                    "source": m.consent.source or None,
                    "joined_at": m.consent.joined_at or None,
                    "confirmed_at": m.consent.confirmed_at or None,
                    "ip": m.consent.ip or None,
                },
            }
            for m in data.lists
        ],
        "events": [
            {
                "at": e.at,
                "kind": e.kind,
                "list": e.list or None,
                "campaign": e.campaign_id,
                "detail": e.detail,
            }
            for e in data.events
        ],
        "deliveries": [
            {
                "campaign": d.campaign_id,
                "subject": d.subject,
                "status": d.status,
                "sent_at": d.sent_at or None,
                "attempts": d.attempts,
                "code": d.code,
                "reply": d.reply,
                "message_id": d.message_id or None,
            }
            for d in data.deliveries
        ],
    }
