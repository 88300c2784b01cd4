"""Readers arriving on a list a batch at a time (an import's chunk, the editor's add)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from mailer.audience.erased import erased_among
from mailer.audience.status.bulk import Standing, join_many
from mailer.db.database import Database
from mailer.models import Candidate, MailingList, Outcome


@dataclass(frozen=True, slots=True)
class Landed:
    """What a batch did: each address's outcome; erased addresses have none."""

    outcomes: dict[str, Outcome]
    erased: frozenset[str]


def land(
    database: Database,
    mailing_list: MailingList,
    candidates: Sequence[Candidate],
    *,
    secret: bytes,
    standings: Mapping[str, Standing] | None = None,
    resubscribe: bool = False,
    confirmed: bool = False,
    dry_run: bool = False,
    detail: str | None = None,
    meanwhile: Callable[[], None] | None = None,
) -> Landed:
    """Add a batch of distinct addresses to a list (``status.join_many``), leaving out those
    erased at their request (their keyed hash, made with the workspace's ``secret``, is in
    erased_addresses), even with ``resubscribe``: only their own new consent, through the
    form, brings them back. ``meanwhile``: work the database's server leaves time for
    (``insert_rows``); it may not run."""
    with database.transaction() as db:
        erased: set[str] = set()
        if db.execute("SELECT 1 FROM erased_addresses LIMIT 1").fetchone():
            erased = erased_among(db, secret, [c.email for c in candidates])
        kept = [c for c in candidates if c.email not in erased]
        outcomes = join_many(db, mailing_list, kept, resubscribe=resubscribe, confirmed=confirmed,
                             dry_run=dry_run, standings=standings, detail=detail,
                             meanwhile=meanwhile)  # fmt: skip
    return Landed(dict(zip((c.email for c in kept), outcomes, strict=True)), frozenset(erased))
