"""What readers do themselves on the web side: change a membership, ask to subscribe, and the
public archive of sent campaigns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mailer.models import Candidate, MailingList, Member, MembershipStatus, SubscriberStatus
from mailer.store import Store, now


@dataclass(frozen=True, slots=True)
class ArchivedCampaign:
    """A sent campaign of a public list, as the online archive shows it."""

    id: int
    subject: str
    published: str
    source: str
    report_path: str
    list: MailingList


class Subscriptions:
    """Readers' own changes over a Store, each in one transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def set_membership(
        self, list_id: int, subscriber_id: int, status: MembershipStatus, kind: str, detail: str
    ) -> bool | None:
        """Move one membership to ``status`` and record event ``kind``: True if it changed,
        False if it already had that status (nothing written), None if there is no membership."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT status FROM memberships WHERE list_id = ? AND subscriber_id = ?",
                (list_id, subscriber_id),
            ).fetchone()
            if row is None:
                return None
            if row[0] == status:
                return False
            stamp = now()
            db.execute(
                "UPDATE memberships SET status = ?, updated_at = ?"
                " WHERE list_id = ? AND subscriber_id = ?",
                (str(status), stamp, list_id, subscriber_id),
            )
            db.execute(
                "INSERT INTO events (at, kind, subscriber_id, list_id, detail)"
                " VALUES (?, ?, ?, ?, ?)",
                (stamp, kind, subscriber_id, list_id, detail),
            )
        return True

    def request_subscription(
        self, mailing_list: MailingList, candidate: Candidate, detail: str = "web form"
    ) -> Member | None:
        """Subscribe an address from the public form; return the member to send a confirmation
        message to, or None. Never rejoins a reader who left, bounced or was blocklisted by
        itself: a reader who left gets a confirmation message, the others nothing."""
        stamp = now()
        joined = "unconfirmed" if mailing_list.double_opt_in else "confirmed"
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT s.id, s.status, m.status FROM subscribers s LEFT JOIN memberships m"
                " ON m.subscriber_id = s.id AND m.list_id = ? WHERE s.email = ?",
                (mailing_list.id, candidate.email),
            ).fetchone()
            if row is None:
                cursor = db.execute(
                    "INSERT INTO subscribers (email, name, smtputf8, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (candidate.email, candidate.name or "", candidate.smtputf8, stamp, stamp),
                )
                row = (cursor.lastrowid, SubscriberStatus.ACTIVE, None)
            subscriber_id, status, membership = row
            if status != SubscriberStatus.ACTIVE or membership == MembershipStatus.CONFIRMED:
                return None
            if membership is None:
                db.execute(
                    "INSERT INTO memberships (list_id, subscriber_id, status, updated_at)"
                    " VALUES (?, ?, ?, ?)",
                    (mailing_list.id, subscriber_id, joined, stamp),
                )
                db.execute(
                    "INSERT INTO events (at, kind, subscriber_id, list_id, detail)"
                    " VALUES (?, 'subscribed', ?, ?, ?)",
                    (stamp, subscriber_id, mailing_list.id, detail),
                )
                if not mailing_list.double_opt_in:
                    return None
        return self.store.member_by_id(mailing_list.id, subscriber_id)

    def public_campaigns(self, limit: int = 100) -> list[ArchivedCampaign]:
        """Campaigns of public lists that reached at least one reader, newest first."""
        return self._archived("", (limit,))

    def public_campaign(self, campaign_id: int) -> ArchivedCampaign | None:
        found = self._archived("AND c.id = ?", (campaign_id, 1))
        return found[0] if found else None

    def _archived(self, where: str, params: Sequence[Any]) -> list[ArchivedCampaign]:
        rows = self.store._query(
            "SELECT c.id, c.subject, c.started_at, c.source, c.report_path,"
            " l.id, l.slug, l.name, l.opt_in, l.public_archive"
            " FROM campaigns c JOIN lists l ON l.id = c.list_id"
            " WHERE l.public_archive = 1 AND c.status != 'cancelled'"
            " AND c.started_at IS NOT NULL AND EXISTS (SELECT 1 FROM deliveries d"
            f"  WHERE d.campaign_id = c.id AND d.status = 'sent') {where}"
            " ORDER BY c.started_at DESC, c.id DESC LIMIT ?",
            params,
        )
        return [
            ArchivedCampaign(
                r[0], r[1], r[2], r[3], r[4], MailingList(r[5], r[6], r[7], r[8] == "double", True)
            )
            for r in rows
        ]
