"""The one home of every membership and subscriber status change, and of the event it writes.

Each change is looked up in the table of allowed transitions (``table``), applied, and recorded
in ``events`` in the same transaction (``changes``; ``bulk`` for an editor's batch of readers).
Callers (CLI, web, imports, bounces, the send pipeline's writer) pass a connection that is
inside their transaction, or use the wrappers that open one. The reader's own edits of their
name, language and address (``Edit``) are changed and recorded here too (``change_profile``).
"""

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
from mailer.audience.status.table import (
    LEADS_TO,
    MEMBERSHIP,
    SUBSCRIBER,
    Change,
    Edit,
    Verdict,
    membership_target,
)

__all__ = [
    "LEADS_TO", "MEMBERSHIP", "SUBSCRIBER", "Change", "Edit", "Verdict", "Where", "bounce",
    "bounce_many", "change_membership", "change_profile", "change_subscriber", "join_many",
    "membership_target", "record_event", "renew_consent", "set_membership", "set_subscriber",
]  # fmt: skip
