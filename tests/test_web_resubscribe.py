"""`mailer serve`'s "Subscribe again": only what this link's unsubscribe left, from our page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.audience import lists, members, subscriptions, suppression
from mailer.audience.erasure import forget
from mailer.audience.status import Change, change_membership
from mailer.models import Candidate, MailingList
from mailer.tokens import load_secret
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Site, http, make_site


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


def ours(site: Site) -> dict[str, str]:
    """The headers of a form sent from our own page, as a browser sends them."""
    return {**FORM, "Origin": site.live.url}


def leave(site: Site, token: str) -> str:
    """One-click unsubscribe by ``token``; the page's "Subscribe again" field ('' if none)."""
    page = http("POST", f"{site.live.url}/u/{token}", b"List-Unsubscribe=One-Click", FORM)
    assert page.status == 200
    found = re.search(r'name="lists" value="([^"]*)"', page.body)
    return found.group(1) if found else ""


def again(site: Site, token: str, body: bytes = b"", origin: bool = True) -> int:
    headers = ours(site) if origin else FORM
    return http("POST", f"{site.live.url}/u/{token}/resubscribe", body, headers).status


def second_list(site: Site) -> MailingList:
    with site.live.store() as store:
        alerts = lists.create(store, "alerts", "Alerts")
        subscriptions.add(store, alerts, [Candidate("ada@example.org", False, "Ada")])
    return alerts


def test_subscribe_again_needs_our_page(site: Site) -> None:
    """A POST without our Origin (another site's form, a script) changes nothing."""
    token = site.token("u", site.ada, site.weekly)
    leave(site, token)
    assert again(site, token, origin=False) == 403
    assert again(site, token, b"lists=%d" % site.weekly.id, origin=False) == 403
    assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"
    assert again(site, token) == 200
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"


@pytest.mark.parametrize("how", ["editor", "preferences"])
def test_a_departure_by_another_way_is_not_undone_by_an_old_link(site: Site, how: str) -> None:
    """Whoever holds an old (perhaps forwarded) message cannot bring back a reader the editor
    removed, or who left from their preferences page: the link left nothing."""
    with site.live.store() as store:
        if how == "editor":
            subscriptions.unsubscribe(store, site.weekly, "ada@example.org", "by the editor")
        else:
            with store.transaction() as db:
                change_membership(db, Change.UNSUBSCRIBE, site.ada.id, site.weekly.id,
                                  detail="preferences")  # fmt: skip
    token = site.token("u", site.ada, site.weekly)
    for body in (b"", b"lists=%d" % site.weekly.id):
        assert again(site, token, body) == 404
    assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"
    assert [e for e in site.events("ada@example.org") if e[0] == "resubscribed"] == []


def test_a_forged_field_cannot_bring_back_a_list_left_earlier(site: Site) -> None:
    """Ada left Weekly by one message's link, then Alerts by the link of a campaign sent to
    both lists: that page offers Alerts, and a field naming Weekly too brings back Alerts."""
    alerts = second_list(site)
    leave(site, site.token("u", site.ada, site.weekly))
    token = campaign_to_both(site, alerts)
    assert leave(site, token) == str(alerts.id)
    forged = f"lists={site.weekly.id},{alerts.id}".encode()
    assert again(site, token, forged) == 200
    assert again(site, token, b"") == 200  # a page from before the field: the same
    assert site.membership(alerts, "ada@example.org") == "confirmed"
    assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"


def test_an_erased_readers_link_is_invalid(site: Site) -> None:
    token = site.token("u", site.ada, site.weekly)
    with site.live.store() as store:
        forget(store, "ada@example.org", load_secret(site.live.settings.workspace), None)
    for method in ("GET", "POST"):
        page = http(method, f"{site.live.url}/u/{token}", b"", FORM)
        assert page.status == 404 and "erased.invalid" not in page.body
    assert again(site, token) == 404


def test_a_blocked_reader_is_not_offered_to_subscribe_again(site: Site) -> None:
    token = site.token("u", site.ada, site.weekly)
    with site.live.store() as store:
        secret = load_secret(site.live.settings.workspace)
        suppression.block(store, [Candidate("ada@example.org", False)], secret)
    assert leave(site, token) == ""
    page = http("POST", f"{site.live.url}/u/{token}", b"", FORM)
    assert "Subscribe again" not in page.body
    assert again(site, token) == 404
    with site.live.store() as store:
        found = members.find(store, site.weekly, "ada@example.org")
    assert found is not None and found.subscriber_status == "blocklisted"


def campaign_to_both(site: Site, alerts: MailingList) -> str:
    """Campaign 7, sent to Weekly and Alerts: Ada's link that leaves both."""
    with site.live.store() as store, store.transaction() as db:
        db.execute(
            "INSERT INTO campaigns (id, list_id, list_slug, subject, report_path, source,"
            " source_sha256, created_at) VALUES (7, ?, 'weekly', 's', 'r.md', '', '', '')",
            (site.weekly.id,),
        )
        for position, listed in enumerate((site.weekly, alerts)):
            db.execute(
                "INSERT INTO campaign_lists (campaign_id, list_id, list_slug, position)"
                " VALUES (7, ?, ?, ?)",
                (listed.id, listed.slug, position),
            )
    return site.live.signer().make("k", site.ada.id, 7)


def test_another_messages_link_cannot_undo_what_a_campaign_link_left(site: Site) -> None:
    """Ada left both lists by campaign 7's link; an older Weekly message's link left nothing,
    so its page offers nothing back, and a press there changes nothing."""
    alerts = second_list(site)
    both = campaign_to_both(site, alerts)
    assert sorted(leave(site, both).split(",")) == sorted([str(site.weekly.id), str(alerts.id)])
    old = site.token("u", site.ada, site.weekly)
    assert leave(site, old) == ""
    assert again(site, old, f"lists={site.weekly.id}".encode()) == 404
    assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"
    with site.live.store() as store:  # the campaign's unsubscribes are its fallout
        row = store.query_one(
            "SELECT COUNT(*) FROM events WHERE campaign_id = 7 AND kind = 'unsubscribed'"
        )
    assert row is not None and row[0] == 2


def test_one_press_that_spans_a_second_is_undone_whole(site: Site) -> None:
    """A campaign's link leaves its lists one after another, perhaps across a second (a busy
    database): "Subscribe again" brings back every list of that press."""
    alerts = second_list(site)
    both = campaign_to_both(site, alerts)
    offered = leave(site, both)
    with site.live.store() as store:  # the first list's departure a second before the second's
        store.execute(
            "UPDATE events SET at = '2000-01-01T00:00:00+00:00' WHERE list_id = ?",
            (site.weekly.id,),
        )
        store.execute(
            "UPDATE events SET at = '2000-01-01T00:00:01+00:00' WHERE list_id = ?", (alerts.id,)
        )
    assert again(site, both, f"lists={offered}".encode()) == 200
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"
    assert site.membership(alerts, "ada@example.org") == "confirmed"
