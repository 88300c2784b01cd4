"""Erased addresses, kept only as keyed hashes (HMAC-SHA256 with the workspace secret)."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable

from mailer.db.database import IN_JSON, Connection

# A keyed hash lets a later import skip an erased reader without the address itself being stored
# anywhere.


def digest(secret: bytes, email: str) -> str:
    """The keyed hash of a normalised address (lower-case domain, as stored)."""
    return hmac.new(secret, email.encode("utf-8"), hashlib.sha256).hexdigest()


def remember(db: Connection, secret: bytes, email: str, at: str) -> None:
    db.execute(
        "INSERT OR IGNORE INTO erased_addresses (digest, erased_at) VALUES (?, ?)",
        (digest(secret, email), at),
    )


def forget_erasure(db: Connection, secret: bytes, email: str) -> None:
    """The reader came back with their own new consent (the form's double opt-in)."""
    db.execute("DELETE FROM erased_addresses WHERE digest = ?", (digest(secret, email),))


def erased_among(db: Connection, secret: bytes, emails: Iterable[str]) -> set[str]:
    """Those of ``emails`` that were erased."""
    by_digest = {digest(secret, e): e for e in emails}
    rows = db.execute(
        f"SELECT digest FROM erased_addresses WHERE digest IN {IN_JSON}",
        (json.dumps(list(by_digest)),),
    )
    return {by_digest[row[0]] for row in rows}
