"""Suppression: `subscribers block` and `unblock`, and no CLI or form path that brings a blocked,
bounced, unsubscribed or erased reader back without --resubscribe or their own new consent."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer.audience import lists, members
from mailer.audience.status import Change, set_subscriber
from mailer.db.database import Database
from tests.conftest import EXAMPLE_REPORT, Invoke, store, write_csv
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Site, confirm_link, http, make_site, post_form

pytestmark = pytest.mark.usefixtures("engine")  # each test on SQLite, then PostgreSQL


def db(workspace: Path) -> Database:
    return store(workspace)  # on the test's engine


def statuses(workspace: Path, email: str) -> tuple[str | None, dict[str, str]]:
    """The subscriber's status everywhere and their membership status per list slug."""
    with db(workspace) as store:
        row = store.query_one("SELECT status FROM subscribers WHERE email = ?", (email,))
        on = store.query(
            "SELECT l.slug, m.status FROM memberships m JOIN lists l ON l.id = m.list_id"
            " JOIN subscribers s ON s.id = m.subscriber_id WHERE s.email = ?",
            (email,),
        )
    return (None if row is None else str(row[0])), dict(on)


def events(workspace: Path, email: str) -> list[tuple[str, str]]:
    with db(workspace) as store:
        return [(kind, detail) for _, kind, detail in members.events_for(store, email)]


def delivered(workspace: Path) -> Counter[str]:
    """Recipients of the messages in the workspace's outbox Maildir, by its Delivered-To line."""
    found: Counter[str] = Counter()
    for path in (workspace / "outbox" / "new").glob("*"):
        head = path.read_bytes().split(b"\r\n", 2)[1]
        found[head.removeprefix(b"Delivered-To: ").decode()] += 1
    return found


def send(mailer: Invoke, workspace: Path, slug: str) -> Counter[str]:
    """Send the example report to ``slug`` into the outbox; who received it this time."""
    before = delivered(workspace)
    result = mailer("send", str(EXAMPLE_REPORT), "--list", slug, "--yes", "--again")
    assert result.exit_code == 0, result.output
    return delivered(workspace) - before


@pytest.fixture
def readers(mailer: Invoke, workspace: Path) -> Path:
    """weekly (single opt-in): ada, bob, cy confirmed; letters: ada confirmed, then left."""
    assert mailer("lists", "create", "weekly").exit_code == 0
    assert mailer("lists", "create", "letters").exit_code == 0
    for email in ("ada@example.org", "bob@example.org", "cy@example.org"):
        assert mailer("subscribers", "add", "weekly", email).exit_code == 0
    assert mailer("subscribers", "add", "letters", "ada@example.org").exit_code == 0
    assert mailer("subscribers", "rm", "letters", "ada@example.org").exit_code == 0
    return workspace


def test_block_known_and_never_seen_addresses_on_every_list(mailer: Invoke, readers: Path) -> None:
    result = mailer("subscribers", "block", "Ada@Example.org", "spam@example.net",
                    "ada@example.org")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "blocked ada@example.org on every list (was active; memberships kept: letters"
        " unsubscribed, weekly confirmed)",
        "blocked spam@example.net (not known before): no list, import or form will add it",
    ]
    assert statuses(readers, "ada@example.org") == (
        "blocklisted", {"weekly": "confirmed", "letters": "unsubscribed"})  # fmt: skip
    assert statuses(readers, "spam@example.net") == ("blocklisted", {})
    assert events(readers, "spam@example.net") == [("blocklisted", "by the editor")]
    again = mailer("subscribers", "block", "spam@example.net")
    assert again.stdout == "spam@example.net was already blocked\n"
    assert events(readers, "spam@example.net") == [("blocklisted", "by the editor")]
    assert send(mailer, readers, "weekly") == Counter({"bob@example.org": 1, "cy@example.org": 1})


def test_unblock_lifts_the_block_and_leaves_memberships_as_they_were(
    mailer: Invoke, readers: Path
) -> None:
    assert mailer("subscribers", "block", "ada@example.org", "new@example.org").exit_code == 0
    with db(readers) as store:
        cy = store.query_one("SELECT id FROM subscribers WHERE email = 'cy@example.org'")
        assert cy is not None
        set_subscriber(store, Change.COMPLAINT, cy[0])  # cy reported a campaign as spam
    result = mailer("subscribers", "unblock", "ada@example.org", "new@example.org",
                    "cy@example.org", "bob@example.org")  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "unblocked ada@example.org (blocked by the editor): receives mail again on weekly"
        " (still letters unsubscribed)",
        "unblocked new@example.org (blocked by the editor): on no list yet",
        "unblocked cy@example.org (blocked after a complaint): receives mail again on weekly",
        "bob@example.org is not blocked (active)",
    ]
    assert statuses(readers, "ada@example.org") == (
        "active", {"weekly": "confirmed", "letters": "unsubscribed"})  # fmt: skip
    assert events(readers, "ada@example.org")[-2:] == [
        ("blocklisted", "by the editor"), ("unblocked", "by the editor")]  # fmt: skip
    received = send(mailer, readers, "weekly")
    assert set(received) == {"ada@example.org", "bob@example.org", "cy@example.org"}
    left = mailer("send", str(EXAMPLE_REPORT), "--list", "letters", "--yes")  # ada left it
    assert left.exit_code == 1 and "letters: no confirmed, active readers" in left.stderr


def test_unblock_of_an_unknown_address_exits_1_after_the_others(
    mailer: Invoke, readers: Path
) -> None:
    assert mailer("subscribers", "block", "ada@example.org").exit_code == 0
    result = mailer("subscribers", "unblock", "ghost@example.org", "ada@example.org")
    assert result.exit_code == 1
    assert result.stdout.startswith("unblocked ada@example.org")
    assert result.stderr == "error: no subscriber 'ghost@example.org'\n"
    assert statuses(readers, "ghost@example.org") == (None, {})


def test_unblock_leaves_a_bounced_reader_bounced(mailer: Invoke, readers: Path) -> None:
    with db(readers) as store:
        bob = members.find(store, lists.get(store, "weekly"), "bob@example.org")
        assert bob is not None
        set_subscriber(store, Change.BOUNCE, bob.id)
    result = mailer("subscribers", "unblock", "bob@example.org")
    assert "is not blocked but bounced" in result.stdout and "--resubscribe" in result.stdout
    assert statuses(readers, "bob@example.org")[0] == "bounced"


def test_invalid_address_blocks_nothing(mailer: Invoke, readers: Path) -> None:
    result = mailer("subscribers", "block", "new@example.org", "not an address")
    assert result.exit_code == 1 and result.stderr.startswith("error: invalid address")
    assert statuses(readers, "new@example.org") == (None, {})


@pytest.mark.parametrize("state", ["blocklisted", "blocked-new", "bounced", "unsubscribed"])
def test_the_editors_additions_never_bring_back_who_left(
    mailer: Invoke, readers: Path, state: str
) -> None:
    email = "new@example.org" if state == "blocked-new" else "ada@example.org"
    slug = "letters" if state == "unsubscribed" else "weekly"
    if state in ("blocklisted", "blocked-new"):
        assert mailer("subscribers", "block", email).exit_code == 0
    elif state == "bounced":
        with db(readers) as store:
            ada = members.find(store, lists.get(store, "weekly"), email)
            assert ada is not None
            set_subscriber(store, Change.BOUNCE, ada.id)
    before = statuses(readers, email)
    added = mailer("subscribers", "add", slug, email)
    assert added.exit_code == 1 and "--resubscribe" in added.stderr
    csv = write_csv(readers / "r.csv", f"email\n{email}\nfresh@example.org\n")
    imported = mailer("subscribers", "import", slug, str(csv), "--confirmed")
    assert imported.exit_code == 0 and "1 added" in imported.stdout
    assert statuses(readers, email) == before
    assert email not in send(mailer, readers, slug)
    resubscribed = mailer("subscribers", "add", slug, email, "--resubscribe")  # explicit
    assert resubscribed.exit_code == 0, resubscribed.output
    assert statuses(readers, email)[0] == "active"
    assert email in send(mailer, readers, slug)


# the form: a reader's own new consent brings back who left or bounced, never who was blocked


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    """A live site for the test, on each engine in turn."""
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


def subscriber_status(site: Site, email: str) -> str:
    with site.live.store() as store:
        row = store.query_one("SELECT status FROM subscribers WHERE email = ?", (email,))
    assert row is not None
    return str(row[0])


def knock(site: Site, email: str, on: str = "weekly") -> list[str]:
    """``email`` asks through the form, then a stranger does: who got a confirmation since.
    Requests are done in order, so the stranger's confirmation comes last."""
    count = len(site.mailbox.received)
    barrier = f"barrier{count}@example.org"
    post_form(f"{site.live.url}/s/{on}", {"email": email})
    post_form(f"{site.live.url}/s/{on}", {"email": barrier})
    with site.mailbox.arrived:
        arrived = site.mailbox.arrived.wait_for(
            lambda: barrier in [r.recipient for r in site.mailbox.received], timeout=20
        )
    assert arrived
    return [r.recipient for r in site.mailbox.received[count:] if r.recipient != barrier]


@pytest.mark.parametrize("change", [Change.BLOCK, Change.COMPLAINT])
def test_a_blocked_reader_cannot_come_back_through_the_form(site: Site, change: Change) -> None:
    with site.live.store() as store:
        set_subscriber(store, change, site.ada.id)
    assert knock(site, "ada@example.org") == []
    assert subscriber_status(site, "ada@example.org") == "blocklisted"
    # A link from an earlier request, or the resubscribe button of an old message: refused too.
    issued = int(time.time())
    link = site.live.signer().make("c", site.ada.id, site.weekly.id, issued)
    assert http("POST", f"{site.live.url}/c/{link}", b"", FORM).status == 404
    token = site.token("u", site.ada, site.weekly)
    ours = {**FORM, "Origin": site.live.url}  # as the page's button sends it
    assert http("POST", f"{site.live.url}/u/{token}/resubscribe", b"", ours).status == 404
    assert subscriber_status(site, "ada@example.org") == "blocklisted"


def test_a_bounced_reader_comes_back_only_by_confirming_a_new_request(site: Site) -> None:
    with site.live.store() as store:
        set_subscriber(store, Change.BOUNCE, site.ada.id)
    token = site.token("u", site.ada, site.weekly)  # "subscribe again" on an old message's page
    ours = {**FORM, "Origin": site.live.url}  # as the page's button sends it
    assert http("POST", f"{site.live.url}/u/{token}/resubscribe", b"", ours).status == 404
    assert knock(site, "ada@example.org", "letters") == ["ada@example.org"]
    assert knock(site, "ada@example.org") == ["ada@example.org"]  # confirmed there, but bounced
    messages = [r.message for r in site.mailbox.received if r.recipient == "ada@example.org"]
    assert subscriber_status(site, "ada@example.org") == "bounced"  # until they confirm
    assert site.membership(site.double, "ada@example.org") == "unconfirmed"
    assert http("POST", confirm_link(messages[1], site.live.url), b"", FORM).status == 200
    assert subscriber_status(site, "ada@example.org") == "active"
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"
    assert site.membership(site.double, "ada@example.org") == "unconfirmed"  # its own link
    assert site.events("ada@example.org")[-1] == ("resubscribed", "web")
    assert http("POST", confirm_link(messages[0], site.live.url), b"", FORM).status == 200
    assert site.membership(site.double, "ada@example.org") == "confirmed"


def test_a_link_from_before_the_bounce_cannot_bring_them_back(
    workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    later = [-60.0]  # the site's clock runs a minute behind: the first link is older
    site = make_site(workspace, smtp, clock=lambda: time.time() + later[0])
    try:
        assert knock(site, "bea@example.org", "letters") == ["bea@example.org"]
        old = confirm_link(site.mailbox.received[0].message, site.live.url)
        with site.live.store() as store:
            bea = members.find(store, site.double, "bea@example.org")
            assert bea is not None
            set_subscriber(store, Change.BOUNCE, bea.id)
        for method in ("GET", "POST"):
            assert http(method, old, b"", FORM).status == 404
        assert subscriber_status(site, "bea@example.org") == "bounced"
        later[0] = 0.0
        assert knock(site, "bea@example.org", "letters") == ["bea@example.org"]
        fresh = [r for r in site.mailbox.received if r.recipient == "bea@example.org"][-1]
        assert http("POST", confirm_link(fresh.message, site.live.url), b"", FORM).status == 200
        assert subscriber_status(site, "bea@example.org") == "active"
        assert site.membership(site.double, "bea@example.org") == "confirmed"
    finally:
        site.live.stop()


def test_a_reader_blocked_after_asking_cannot_confirm(site: Site) -> None:
    with site.live.store() as store:
        set_subscriber(store, Change.BOUNCE, site.ada.id)
    assert knock(site, "ada@example.org") == ["ada@example.org"]
    link = confirm_link(site.mailbox.received[0].message, site.live.url)
    with site.live.store() as store:
        set_subscriber(store, Change.BLOCK, site.ada.id)
    assert http("POST", link, b"", FORM).status == 404
    assert subscriber_status(site, "ada@example.org") == "blocklisted"


def test_an_unsubscribed_reader_resubscribes_by_their_own_hand_only(
    site: Site, mailer: Invoke
) -> None:
    token = site.token("u", site.ada, site.weekly)
    left = http("POST", f"{site.live.url}/u/{token}", b"List-Unsubscribe=One-Click", FORM)
    assert left.status == 200
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 1
    assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"
    ours = {**FORM, "Origin": site.live.url}  # the page after unsubscribing: their click
    assert http("POST", f"{site.live.url}/u/{token}/resubscribe", b"", ours).status == 200
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"


def test_the_editors_additions_never_bring_back_a_forgotten_address(
    mailer: Invoke, readers: Path
) -> None:
    """Only a keyed hash of the address is left, and it is enough to refuse it (the import's
    summary counts it as erased); the reader may come back through the form (test_reader_data)."""
    assert mailer("subscribers", "forget", "ada@example.org", "--yes").exit_code == 0
    assert mailer("subscribers", "add", "weekly", "ada@example.org").exit_code == 1
    csv = write_csv(readers / "r.csv", "email\nada@example.org\nfresh@example.org\n")
    imported = mailer("subscribers", "import", "weekly", str(csv), "--confirmed")
    assert imported.exit_code == 0 and "1 added" in imported.stdout
    assert statuses(readers, "ada@example.org") == (None, {})
    assert "ada@example.org" not in send(mailer, readers, "weekly")
