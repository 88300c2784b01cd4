"""Forgetting a reader on request (GDPR article 17): their data erased everywhere it was kept."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

from mailer.audience import erased
from mailer.audience.status import Change, Verdict, change_subscriber
from mailer.db.database import Connection, Database, now
from mailer.errors import FileInputError, NotFoundError

HEAD_BYTES = 4096  # the outbox writes Delivered-To as its second line


@dataclass(frozen=True, slots=True)
class Erasure:
    """What forgetting an address did, or would do (``plan``)."""

    email: str
    already: bool  # erased before: only the keyed hash of the address was left
    erased_at: str = ""
    lists: int = 0  # memberships, now unsubscribed and anonymous
    events: int = 0  # events kept without their details
    deliveries: int = 0  # deliveries kept without the server's replies
    outbox_messages: int = 0  # messages to the address removed from the outbox Maildir
    checkpointed: bool = True  # False: SQLite's write-ahead log still holds the old pages


def plan(database: Database, email: str, secret: bytes) -> Erasure:
    """What forgetting ``email`` would touch; NotFoundError when it is not known at all."""
    row = database.query_one("SELECT id FROM subscribers WHERE email = ?", (email,))
    if row is None:
        return _already(database, email, secret)
    counts = [
        database.query_one(f"SELECT COUNT(*) FROM {table} WHERE subscriber_id = ?", row)
        for table in ("memberships", "events", "deliveries")
    ]
    lists, events, deliveries = (int(c[0]) if c else 0 for c in counts)
    return Erasure(email, False, "", lists, events, deliveries)


def forget(database: Database, email: str, secret: bytes, outbox: Path | None) -> Erasure:
    """Erase the reader with this address: address, name, attributes, tags, language, consent
    IPs, event details, the servers' replies about them, campaign notes that quote the address,
    and their messages in the workspace's outbox Maildir. The erased pages are overwritten in
    the database file. Forgetting an address already erased changes nothing but the outbox."""
    found = plan(database, email, secret)
    if not found.already:
        found = _erase(database, found, secret)
    removed = 0 if outbox is None else _clear_outbox(outbox, email)
    return replace(found, outbox_messages=removed)


def _erase(database: Database, found: Erasure, secret: bytes) -> Erasure:
    database.secure_delete()  # freed space is zeroed, not left behind
    stamp = now()
    with database.transaction() as db:
        row = db.execute("SELECT id FROM subscribers WHERE email = ?", (found.email,)).fetchone()
        verdict = Verdict.MISSING
        if row is not None:  # the rows stay, anonymised, so that campaign counts stay right
            verdict = change_subscriber(db, Change.ERASE, int(row[0]), at=stamp)
        if verdict is Verdict.CHANGED:
            # Only a keyed hash of the address is kept, so that a later import skips it.
            erased.remember(db, secret, found.email, stamp)
            _scrub_campaign_notes(db, found.email)
    if verdict is Verdict.MISSING:  # forgotten meanwhile by another process
        return _already(database, found.email, secret)
    if verdict is not Verdict.CHANGED:  # an erased reader's stand-in address
        return Erasure(found.email, True)
    return replace(found, erased_at=stamp, checkpointed=database.checkpoint())


def _already(database: Database, email: str, secret: bytes) -> Erasure:
    at = _erased_at(database, email, secret)
    if not at:
        raise NotFoundError("subscriber", email)
    return Erasure(email, True, at)


def _erased_at(database: Database, email: str, secret: bytes) -> str:
    row = database.query_one(
        "SELECT erased_at FROM erased_addresses WHERE digest = ?", (erased.digest(secret, email),)
    )
    return str(row[0]) if row else ""


def _scrub_campaign_notes(db: Connection, email: str) -> None:
    """A paused campaign's reason may quote a server's reply that names the address."""
    pattern = re.compile(re.escape(email), re.IGNORECASE)
    rows = db.execute("SELECT id, reason FROM campaigns WHERE instr(lower(reason), ?) > 0",
                      (email.lower(),)).fetchall()  # fmt: skip
    for campaign_id, reason in rows:
        db.execute(
            "UPDATE campaigns SET reason = ? WHERE id = ?",
            (pattern.sub("[erased]", reason), campaign_id),
        )


def _clear_outbox(root: Path, email: str) -> int:
    """Remove the messages delivered to ``email`` in the outbox Maildir (its new/, cur/ and
    tmp/), recognised by the Delivered-To line the outbox writes; how many were removed."""
    line = b"\r\nDelivered-To: " + email.encode("utf-8") + b"\r\n"
    removed = 0
    for folder in ("new", "cur", "tmp"):
        try:
            entries = list(os.scandir(root / folder))
        except FileNotFoundError:
            continue
        except OSError as error:
            raise FileInputError(root / folder, f"cannot read: {error.strerror}") from None
        for entry in entries:
            try:
                with open(entry.path, "rb") as handle:
                    head = handle.read(HEAD_BYTES)
                if line in head:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue  # taken by a mail client meanwhile
            except OSError as error:
                raise FileInputError(entry.path, f"cannot remove: {error.strerror}") from None
    return removed
