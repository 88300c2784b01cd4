"""A campaign's fallout: the bounces and unsubscribes it caused, for `mailer campaigns show`."""

from __future__ import annotations

from dataclasses import dataclass

from mailer.db.database import Database


@dataclass(frozen=True, slots=True)
class Fallout:
    """A bounce or unsubscribe caused by a campaign, for ``mailer campaigns show``."""

    at: str
    kind: str  # bounced | soft_bounce | unsubscribed | complaint
    email: str
    detail: str


FALLOUT_SQL = """
SELECT e.at, e.kind, s.email, e.detail, e.id FROM events e
JOIN subscribers s ON s.id = e.subscriber_id
WHERE e.campaign_id = ?1 AND e.kind IN ('bounced', 'soft_bounce', 'unsubscribed', 'complaint')
UNION ALL
SELECT e.at, e.kind, s.email, e.detail, e.id FROM events e
JOIN subscribers s ON s.id = e.subscriber_id
JOIN campaign_lists c ON c.campaign_id = ?1 AND c.list_id = e.list_id
JOIN deliveries d ON d.campaign_id = c.campaign_id AND d.subscriber_id = e.subscriber_id
  AND d.status IN ('sent', 'failed') AND d.sent_at IS NOT NULL AND d.sent_at <= e.at
WHERE e.campaign_id IS NULL AND e.kind IN ('unsubscribed', 'complaint')
  AND NOT EXISTS (
    SELECT 1 FROM deliveries later JOIN campaign_lists lc ON lc.campaign_id = later.campaign_id
    WHERE later.subscriber_id = e.subscriber_id AND lc.list_id = c.list_id
      AND later.campaign_id != c.campaign_id AND later.sent_at > d.sent_at
      AND later.sent_at <= e.at)
ORDER BY 1, 5
"""


def campaign_fallout(database: Database, campaign_id: int) -> list[Fallout]:
    """Bounces and unsubscribes caused by a campaign: events that name it (bounces, and anything
    recorded with its id), plus unsubscribes from one of its lists by its readers after it
    reached them and before any later campaign of that list did (web and mailto unsubscribes
    name no campaign). Oldest first."""
    rows = database.query(FALLOUT_SQL, (campaign_id,))
    # One click that left several of its lists wrote an event per list: one fallout.
    return list(dict.fromkeys(Fallout(r[0], r[1], r[2], r[3]) for r in rows))
