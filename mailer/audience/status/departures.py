"""Unsubscribes that outlive their list: who had left a deleted list, found by its slug."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

from mailer.audience.status.changes import Where, record_event
from mailer.audience.status.table import Change
from mailer.db.database import IN_JSON, Connection, as_json

# Deleting a list deletes its memberships and, with them, every unsubscribe from it; a list made
# again under the same slug must not take those readers back from an import. The events already
# keep each membership's history with the list's id, through erasure too, so nothing is copied:
# a deletion writes one event of no reader that names the slug its list id had, and a reader's
# last membership event on a deleted list of that slug says whether they had left it. (A table
# of departures would be a second record of the same facts, to keep in step with the first.)
# SQLite may give a deleted list's id to the next list made, so each deletion covers only the
# events of its id written between the previous deletion of that id and itself.
DELETED = "list_deleted"
KINDS = tuple(c.value for c in (Change.SUBSCRIBE, Change.CONFIRM, Change.UNSUBSCRIBE,
                                Change.RESUBSCRIBE))  # fmt: skip


def list_deleted(db: Connection, list_id: int, slug: str, at: str) -> None:
    """Record, in the deleting transaction, that the list ``list_id`` named ``slug`` is gone."""
    record_event(db, DELETED, None, Where(list_id, None, slug), at)


def left_deleted(db: Connection, slug: str, subscriber_ids: Collection[int]) -> set[int]:
    """Those of ``subscriber_ids`` who had left the last deleted list named ``slug`` that they
    were on (their last membership event there: unsubscribed)."""
    if not subscriber_ids:
        return set()
    spans: list[tuple[int, int, int]] = []  # (list id, after event, before event)
    since: dict[int, int] = {}
    for event_id, list_id, named in db.execute(
        "SELECT id, list_id, detail FROM events WHERE subscriber_id IS NULL AND kind = ?"
        " ORDER BY id",
        (DELETED,),
    ):
        if named == slug:
            spans.append((list_id, since.get(list_id, 0), event_id))
        since[list_id] = event_id
    last: dict[int, tuple[int, str]] = {}
    ids = as_json(sorted(subscriber_ids))
    kinds = ", ".join("?" * len(KINDS))
    for list_id, after, before in spans:
        for event_id, subscriber_id, kind in db.execute(
            f"SELECT id, subscriber_id, kind FROM events WHERE subscriber_id IN {IN_JSON}"
            f" AND list_id = ? AND id > ? AND id < ? AND kind IN ({kinds})",
            (ids, list_id, after, before, *KINDS),
        ):
            if event_id > last.get(subscriber_id, (0, ""))[0]:
                last[subscriber_id] = (event_id, kind)
    return {sid for sid, (_, kind) in last.items() if kind == Change.UNSUBSCRIBE}


ONE_PRESS = timedelta(seconds=10)  # a press's departures, one list after another, at most apart
# What an unsubscribe link's page writes as its event's detail: a mail client's one-click POST
# (RFC 8058), or the reader's press of the page's button.
ONE_CLICK, LINK_PAGE = "one-click", "web"


def left_by_link(
    db: Connection, subscriber_id: int, list_ids: Collection[int], campaign_id: int | None
) -> set[int]:
    """Those of ``list_ids`` the reader left in the last press on this unsubscribe link (a
    campaign's, ``campaign_id``, which its events name; or a list's, None), and has not left
    another way since (back by its page's "Subscribe again" counts as not). One press leaves
    each of a campaign's lists in turn: its events are this link's, seconds apart at most.
    Never a list left by the editor, the preferences page, a bounce, a mailto, another
    message's link, or an earlier press."""
    if not list_ids:
        return set()
    kinds = ", ".join("?" * len(KINDS))
    last: dict[int, tuple[int, bool]] = {}  # list: its last event (id, this link's own)
    departed: dict[int, datetime] = {}  # list: when this link left it last
    latest = datetime.min.replace(tzinfo=UTC)  # this link's last departure among them
    for event_id, list_id, kind, detail, at, campaign in db.execute(
        f"SELECT id, list_id, kind, detail, at, campaign_id FROM events WHERE subscriber_id = ?"
        f" AND list_id IN {IN_JSON} AND kind IN ({kinds}) ORDER BY id",
        (subscriber_id, as_json(sorted(list_ids)), *KINDS),
    ):
        mine = campaign == campaign_id and detail in (ONE_CLICK, LINK_PAGE)
        linked = kind == Change.UNSUBSCRIBE and mine
        if linked:
            departed[list_id] = moment = datetime.fromisoformat(at)
            latest = max(latest, moment)
        back = kind == Change.RESUBSCRIBE and detail == LINK_PAGE and list_id in departed
        last[list_id] = (event_id, linked or back)
    return {key for key, (_, own) in last.items() if own and latest - departed[key] <= ONE_PRESS}
