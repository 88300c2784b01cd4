"""The table of allowed status transitions; a change from a status it does not list is refused."""

from __future__ import annotations

from enum import StrEnum

from mailer.models import MembershipStatus, SubscriberStatus


class Change(StrEnum):
    """What happened to a reader; the value is the event's kind."""

    SUBSCRIBE = "subscribed"
    CONFIRM = "confirmed"
    UNSUBSCRIBE = "unsubscribed"
    RESUBSCRIBE = "resubscribed"  # back after leaving: own consent, or --resubscribe
    BOUNCE = "bounced"
    COMPLAINT = "complaint"
    BLOCK = "blocklisted"
    UNBLOCK = "unblocked"
    ERASE = "erased"


class Edit(StrEnum):
    """What a reader changed of what they told us (not a status); the value is the event's
    kind. Their own change, on their preferences page."""

    NAME = "name_changed"
    LANGUAGE = "language_changed"
    ADDRESS = "address_changed"  # the new address confirmed the change
    ADDRESS_REQUESTED = "address_requested"  # waits for the new address to confirm it
    ADDRESS_CANCELLED = "address_cancelled"  # the request withdrawn before it was confirmed


class Verdict(StrEnum):
    CHANGED = "changed"
    UNCHANGED = "unchanged"  # already there: nothing written
    REFUSED = "refused"  # not allowed from where the reader is: nothing written
    MISSING = "missing"  # no such subscriber or membership


M, S = MembershipStatus, SubscriberStatus

# (change, status before) -> status after. Membership changes act on one list; subscriber
# changes on the reader everywhere. A pair that is absent is refused.
MEMBERSHIP: dict[tuple[Change, MembershipStatus | None], frozenset[MembershipStatus]] = {
    (Change.SUBSCRIBE, None): frozenset({M.UNCONFIRMED, M.CONFIRMED}),
    (Change.CONFIRM, M.UNCONFIRMED): frozenset({M.CONFIRMED}),
    (Change.UNSUBSCRIBE, M.UNCONFIRMED): frozenset({M.UNSUBSCRIBED}),
    (Change.UNSUBSCRIBE, M.CONFIRMED): frozenset({M.UNSUBSCRIBED}),
    (Change.RESUBSCRIBE, M.UNSUBSCRIBED): frozenset({M.UNCONFIRMED, M.CONFIRMED}),
}
SUBSCRIBER: dict[tuple[Change, SubscriberStatus], SubscriberStatus] = {
    (Change.BOUNCE, S.ACTIVE): S.BOUNCED,
    (Change.COMPLAINT, S.ACTIVE): S.BLOCKLISTED,
    (Change.COMPLAINT, S.BOUNCED): S.BLOCKLISTED,
    (Change.BLOCK, S.ACTIVE): S.BLOCKLISTED,
    (Change.BLOCK, S.BOUNCED): S.BLOCKLISTED,
    (Change.UNBLOCK, S.BLOCKLISTED): S.ACTIVE,
    (Change.RESUBSCRIBE, S.BOUNCED): S.ACTIVE,
    (Change.RESUBSCRIBE, S.BLOCKLISTED): S.ACTIVE,
    (Change.ERASE, S.ACTIVE): S.ERASED,
    (Change.ERASE, S.BOUNCED): S.ERASED,
    (Change.ERASE, S.BLOCKLISTED): S.ERASED,
}


LEADS_TO = {change: after for (change, _), after in SUBSCRIBER.items()}  # being there: unchanged
# A bounce while the reader is blocked changes no status (the block stays) but is kept: its
# event is written, and lifting the block then leads where AFTER_BOUNCE says.
KEPT = frozenset({(Change.BOUNCE, S.BLOCKLISTED)})
# Where a change leads instead when the reader's address bounced (while blocked or before)
# since they last came back (resubscribed): lifting a block never makes a dead address active.
AFTER_BOUNCE = {(Change.UNBLOCK, S.BLOCKLISTED): S.BOUNCED}


def membership_target(
    change: Change, before: MembershipStatus | None, wanted: MembershipStatus | None = None
) -> MembershipStatus | None:
    """Where ``change`` takes a membership from ``before``; None when it is refused."""
    allowed = MEMBERSHIP.get((change, before))
    if not allowed:
        return None
    if wanted is None:
        return next(iter(allowed)) if len(allowed) == 1 else None
    return wanted if wanted in allowed else None


def settled(change: Change, before: MembershipStatus) -> bool:
    """The change is already done: confirming a confirmed reader, unsubscribing one who left."""
    return (change, before) in {
        (Change.CONFIRM, M.CONFIRMED),
        (Change.UNSUBSCRIBE, M.UNSUBSCRIBED),
        (Change.SUBSCRIBE, M.CONFIRMED),
        (Change.SUBSCRIBE, M.UNCONFIRMED),
        (Change.RESUBSCRIBE, M.CONFIRMED),
    }
