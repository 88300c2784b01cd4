"""The one home of every membership and subscriber status change, and of the event it writes."""

from mailer.audience.status.bulk import join_many
from mailer.audience.status.changes import (
    Where,
    bounce,
    bounce_many,
    change_membership,
    change_profile,
    change_subscriber,
    record_event,
    renew_consent,
    set_membership,
    set_subscriber,
)
from mailer.audience.status.departures import (
    LINK_PAGE,
    ONE_CLICK,
    left_by_link,
    left_deleted,
    list_deleted,
)
from mailer.audience.status.table import (
    AFTER_BOUNCE,
    KEPT,
    LEADS_TO,
    MEMBERSHIP,
    SUBSCRIBER,
    Change,
    Edit,
    Verdict,
    membership_target,
)

# Callers (CLI, web, imports, bounces, the send pipeline's writer) pass a connection that is
# inside their own transaction, so a change and its event commit with their work, or use the
# wrappers that open one.
__all__ = [
    "AFTER_BOUNCE", "KEPT", "LEADS_TO", "LINK_PAGE", "MEMBERSHIP", "ONE_CLICK", "SUBSCRIBER",
    "Change", "Edit", "Verdict", "Where", "bounce", "bounce_many", "change_membership",
    "change_profile", "change_subscriber", "join_many", "left_by_link", "left_deleted",
    "list_deleted", "membership_target", "record_event", "renew_consent", "set_membership",
    "set_subscriber",
]  # fmt: skip
