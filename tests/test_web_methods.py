"""Only a POST changes anything: GET and HEAD (whatever body they carry) on every route of
`mailer serve`, and every other method, leave the database, the mailbox and the limits alone."""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailer.audience import lists, members, subscriptions
from mailer.models import Candidate
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Site, http, make_site, post_form

TABLES = ("lists", "subscribers", "memberships", "events", "campaigns", "deliveries")
# What a scanner, a prefetcher or a hostile client could send along with a GET or a HEAD.
HARMFUL = urllib.parse.urlencode(
    {"List-Unsubscribe": "One-Click", "email": "eve@example.org", "name": "Eve"}
).encode()


@pytest.fixture
def site(workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    made = make_site(workspace, smtp, ip_limit=(1, 3600.0))
    yield made
    made.live.stop()


def snapshot(site: Site) -> list[list[tuple[Any, ...]]]:
    with site.live.store() as store:
        return [sorted(store.query(f"SELECT * FROM {table}"), key=repr) for table in TABLES]


def routes(site: Site) -> dict[str, int]:
    """Every route, with a link that a POST would act on, and the status a GET gets."""
    with site.live.store() as store:
        subscriptions.add(store, site.double, [Candidate("bea@example.org", False)])
        subscriptions.add(store, site.weekly, [Candidate("cy@example.org", False)])
        subscriptions.unsubscribe(store, site.weekly, "cy@example.org", "test")
        lists.create(store, "closed", "Closed")
        bea = members.find(store, site.double, "bea@example.org")
        cy = members.find(store, site.weekly, "cy@example.org")
    assert bea is not None and cy is not None and bea.status == "unconfirmed"
    signer, issued = site.live.signer(), int(time.time())
    ada_u = site.token("u", site.ada, site.weekly)
    cy_u = signer.make("u", cy.id, site.weekly.id)
    return {
        "/": 302,
        f"/u/{ada_u}": 200,  # a POST unsubscribes Ada
        f"/u/{cy_u}": 200,
        f"/u/{cy_u}/resubscribe": 405,  # a POST brings Cy back
        f"/c/{signer.make('c', bea.id, site.double.id, issued)}": 200,  # a POST confirms Bea
        f"/c/{signer.make('c', cy.id, site.weekly.id, issued)}": 200,  # ... or resubscribes Cy
        "/s/letters": 200,  # a POST asks for a subscription
        "/s/weekly": 200,
        "/s/closed": 404,
        "/archive/": 200,
        "/archive/feed.xml": 200,
        "/archive/1": 404,
        "/no/such/page": 404,
    }


def test_get_and_head_change_nothing_on_any_route_and_head_answers_like_get(site: Site) -> None:
    expected = routes(site)
    before = snapshot(site)
    headers = {**FORM, "Origin": site.live.url, "X-Forwarded-For": "192.0.2.1"}
    for path, status in expected.items():
        got = http("GET", site.live.url + path, HARMFUL, headers)
        head = http("HEAD", site.live.url + path, HARMFUL, headers)
        assert (got.status, head.status) == (status, status), path
        assert head.body == "" and (got.body != "" or status == 302), path
        del got.headers["date"], head.headers["date"]
        assert head.headers == got.headers, path  # HEAD answers like GET, body left out
    assert snapshot(site) == before
    # Not even the limits moved: the one POST this client may make per hour still works...
    answer = post_form(f"{site.live.url}/s/letters", {"email": "dan@example.org"})
    assert answer.status == 200 and "check your inbox" in answer.body
    # ...and it is the only message that went out (confirmations go out in order).
    assert [r.recipient for r in site.mailbox.wait_for(1)] == ["dan@example.org"]
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"
    assert site.membership(site.weekly, "cy@example.org") == "unsubscribed"
    assert site.membership(site.double, "bea@example.org") == "unconfirmed"
    assert site.membership(site.double, "eve@example.org") is None


def test_other_methods_are_not_allowed_and_change_nothing(site: Site) -> None:
    expected = routes(site)
    before = snapshot(site)
    for path in expected:
        for method in ("PUT", "PATCH", "DELETE"):
            answer = http(method, site.live.url + path, HARMFUL, {**FORM, "Origin": site.live.url})
            assert answer.status in (404, 405), (method, path)
            if answer.status == 405:
                assert "POST" in answer.headers["allow"] or "GET" in answer.headers["allow"]
    assert snapshot(site) == before
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"
