"""The readers' preferences page /p/{token}: name, language, lists, leaving everything, and a new
address confirmed by mail; only a POST from our own page with its CSRF field changes anything."""

from __future__ import annotations

import json
import re
import time
import urllib.parse
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailer.audience import erasure, lists, subscriptions, suppression
from mailer.models import Candidate, Member
from mailer.tokens import Signer
from mailer.web.site import mask
from tests.conftest import Invoke
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import FORM, Answer, Site, confirm_link, http, make_site

DAY = 86_400


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    """A live site for the test, on each engine in turn."""
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


def page_url(site: Site, member: Member | None = None, list_id: int | None = None) -> str:
    """Ada's preferences link, as a message from the weekly list carries it."""
    reader = member or site.ada
    token = site.live.signer().make("p", reader.id, site.weekly.id if list_id is None else list_id)
    return f"{site.live.url}/p/{token}"


def csrf_of(page: Answer) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', page.body)
    assert found is not None
    return found.group(1)


def post(
    url: str, fields: dict[str, str | list[str]], origin: str | None = "", csrf: bool = True
) -> Answer:
    """A form of the page sent as a browser sends it from that page: its Origin, its CSRF."""
    sent = dict(fields)
    if csrf:
        sent.setdefault("csrf", csrf_of(http("GET", url)))
    parts = urllib.parse.urlsplit(url)
    headers = dict(FORM)
    if origin is not None:
        headers["Origin"] = origin or f"{parts.scheme}://{parts.netloc}"
    body = urllib.parse.urlencode(sent, doseq=True).encode()
    return http("POST", url, body, headers)


def save(site: Site, url: str, **fields: str | list[str]) -> Answer:
    """The save form as the page shows it (its own values), with ``fields`` changed."""
    page = http("GET", url)
    shown = re.search(r'name="shown" value="([^"]*)"', page.body)
    name = re.search(r'id="name" name="name" value="([^"]*)"', page.body)
    lang = re.search(r'<option value="([^"]*)"[^>]* selected>', page.body)
    ticked = re.findall(r'name="list" value="(\d+)" checked', page.body)
    assert shown and name and lang
    form: dict[str, str | list[str]] = {"action": "save", "shown": shown.group(1),
                                        "name": name.group(1), "lang": lang.group(1),
                                        "list": ticked}  # fmt: skip
    return post(url, {**form, **fields, "csrf": csrf_of(page)})


def reader_row(site: Site, subscriber_id: int) -> tuple[str, str, str, str]:
    with site.live.store() as store:
        row = store.query_one(
            "SELECT email, name, lang, status FROM subscribers WHERE id = ?", (subscriber_id,)
        )
    assert row is not None
    return row[0], row[1], row[2], row[3]


def events(site: Site, subscriber_id: int) -> list[tuple[str, str | None, str]]:
    """(kind, list slug or None, detail) of every event of the reader, oldest first."""
    with site.live.store() as store:
        rows = store.query(
            "SELECT e.kind, l.slug, e.detail FROM events e LEFT JOIN lists l ON l.id = e.list_id"
            " WHERE e.subscriber_id = ? ORDER BY e.id",
            (subscriber_id,),
        )
    return [(r[0], r[1], r[2]) for r in rows]


def memberships(site: Site, subscriber_id: int) -> dict[str, str]:
    with site.live.store() as store:
        rows = store.query(
            "SELECT l.slug, m.status FROM memberships m JOIN lists l ON l.id = m.list_id"
            " WHERE m.subscriber_id = ?",
            (subscriber_id,),
        )
    return {r[0]: r[1] for r in rows}


def link_in(message: EmailMessage, base: str, route: str) -> str:
    text = message.get_body(("plain",))
    assert text is not None
    found = re.search(re.escape(base) + f"/{route}/" + r"\S+", text.get_content())
    assert found is not None
    return found.group()


def request_address(site: Site, url: str, email: str) -> Answer:
    return post(url, {"action": "address", "email": email})


# looking changes nothing


def test_get_and_head_show_the_page_and_change_nothing(site: Site) -> None:
    url = page_url(site)
    before = (reader_row(site, site.ada.id), events(site, site.ada.id))
    for method in ("GET", "HEAD", "GET"):
        answer = http(method, url + "?action=leave&name=Eve")  # whatever a link carries
        assert answer.status == 200, method
    assert (reader_row(site, site.ada.id), events(site, site.ada.id)) == before
    assert memberships(site, site.ada.id) == {"weekly": "confirmed"}
    page = http("GET", url)
    assert "a…\u2060@example.org" in page.body and "ada@example.org" not in page.body
    assert page.body.count("<h1") == 1 and "<legend>" in page.body
    for field in ("name", "lang", "email", f"list-{site.weekly.id}", f"list-{site.double.id}"):
        assert f'<label for="{field}"' in page.body and f'id="{field}"' in page.body, field
    assert re.search(rf'value="{site.weekly.id}" checked', page.body)  # on it
    assert not re.search(rf'value="{site.double.id}" checked', page.body)  # public, not on it
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "same-origin"  # its POST carries our Origin


# name, language, lists


def test_a_new_name_is_saved_with_its_event_once(site: Site) -> None:
    url = page_url(site)
    for _ in range(2):  # sent twice: one change, one event
        answer = save(site, url, name="  Ada\x07 Lovelace ")
        assert answer.status == 200 and "Your preferences are saved" in answer.body
    assert reader_row(site, site.ada.id)[1] == "Ada Lovelace"  # control characters out
    assert events(site, site.ada.id) == [("subscribed", "weekly", ""),
                                         ("name_changed", None, "preferences")]  # fmt: skip
    assert memberships(site, site.ada.id) == {"weekly": "confirmed"}
    with site.live.store() as store:  # an imported name the form would tidy stays as it is
        store.execute("UPDATE subscribers SET name = 'Ada  King' WHERE id = ?", (site.ada.id,))
    save(site, url, lang="de")
    assert reader_row(site, site.ada.id)[1:3] == ("Ada  King", "de")
    assert [kind for kind, _, _ in events(site, site.ada.id)].count("name_changed") == 1


def test_the_language_is_the_readers_and_the_page_speaks_it(site: Site) -> None:
    url = page_url(site)
    answer = save(site, url, lang="fr")
    assert answer.status == 200 and '<html lang="fr"' in answer.body
    assert reader_row(site, site.ada.id)[2] == "fr"
    assert events(site, site.ada.id)[-1] == ("language_changed", None, "preferences")
    with site.live.store() as store:  # a tag we show as French stays as it is
        store.execute("UPDATE subscribers SET lang = 'fr-CA' WHERE id = ?", (site.ada.id,))
    save(site, url, name="Ada L.")
    assert reader_row(site, site.ada.id)[1:3] == ("Ada L.", "fr-CA")
    save(site, url, lang="xx")  # a language we have no catalog for is not taken
    assert reader_row(site, site.ada.id)[2] == "fr-CA"
    save(site, url, lang="")  # no preference
    assert reader_row(site, site.ada.id)[2] == ""
    kinds = [kind for kind, _, _ in events(site, site.ada.id)]
    assert kinds.count("language_changed") == 2


def test_joining_a_list_takes_the_readers_own_confirmation_leaving_does_not(site: Site) -> None:
    """Whoever holds the link may not be the reader (a message is forwarded with its footer):
    a list ticked here is joined only from the reader's inbox, as on the form."""
    with site.live.store() as store:
        closed = lists.create(store, "closed", "Closed")
    url = page_url(site)
    assert "Closed" not in http("GET", url).body  # not public, not on it: not offered
    shown = f"{site.weekly.id},{site.double.id},{closed.id}"  # a forged field adds nothing
    ticked = [str(site.double.id), str(closed.id)]
    answer = save(site, url, shown=shown, list=ticked)
    assert answer.status == 200 and "To join Letters, open the link" in answer.body
    [asked] = site.mailbox.wait_for(1)
    assert asked.recipient == "ada@example.org"
    assert asked.message["Subject"] == "Please confirm your subscription to Letters"
    assert memberships(site, site.ada.id) == {"weekly": "unsubscribed", "letters": "unconfirmed"}
    assert events(site, site.ada.id)[1:] == [("unsubscribed", "weekly", "preferences"),
                                             ("subscribed", "letters", "preferences")]  # fmt: skip
    assert http("POST", confirm_link(asked.message, site.live.url), b"", FORM).status == 200
    assert memberships(site, site.ada.id) == {"weekly": "unsubscribed", "letters": "confirmed"}
    with site.live.store() as store:
        consent = store.query_one(
            "SELECT source, ip, confirmed_at != '' FROM memberships WHERE subscriber_id = ?"
            " AND list_id = ?",
            (site.ada.id, site.double.id),
        )
    assert consent == ("preferences", "127.0.0.1", 1)
    # Ticking a list they left is no different: their inbox says yes, not the link.
    again = save(site, url, list=[str(site.weekly.id), str(site.double.id)])
    assert again.status == 200
    assert memberships(site, site.ada.id)["weekly"] == "unsubscribed"
    [_, back] = site.mailbox.wait_for(2)
    assert back.message["Subject"] == "Please confirm your subscription to Weekly report"
    http("POST", confirm_link(back.message, site.live.url), b"", FORM)
    assert memberships(site, site.ada.id) == {"weekly": "confirmed", "letters": "confirmed"}


def test_a_blocked_reader_may_leave_but_is_asked_nothing(site: Site) -> None:
    with site.live.store() as store:
        suppression.block(store, [Candidate("ada@example.org", False)], site.live.signer().secret)
    answer = save(site, page_url(site), list=[str(site.double.id)])
    assert answer.status == 200  # the same answer: the page does not say who is blocked
    assert "letters" not in memberships(site, site.ada.id)
    assert site.mailbox.received == []


def test_leaving_everything_leaves_every_list_at_once(site: Site) -> None:
    with site.live.store() as store:
        closed = lists.create(store, "closed", "Closed")
        subscriptions.add(store, closed, [Candidate("ada@example.org", False)])
        subscriptions.add(store, site.double, [Candidate("ada@example.org", False)])
    url = page_url(site, list_id=0)  # a campaign to several lists
    assert "Closed" in http("GET", url).body  # on it: offered, though not public
    answer = post(url, {"action": "leave"})
    assert answer.status == 200 and "will receive no more messages" in answer.body
    assert set(memberships(site, site.ada.id).values()) == {"unsubscribed"}
    left = [slug for kind, slug, detail in events(site, site.ada.id)
            if (kind, detail) == ("unsubscribed", "preferences")]  # fmt: skip
    assert sorted(left) == ["closed", "letters", "weekly"]
    assert not re.search(r'name="list" value="\d+" checked', answer.body)


# a new address


def test_a_new_address_takes_effect_only_once_it_confirms(site: Site) -> None:
    url = page_url(site)
    answer = request_address(site, url, "Ada.New@Example.net")
    assert answer.status == 200
    # Masked, as every address a page shows: whoever holds the link learns nothing they typed.
    assert "If ad…\u2060ew@example.net can receive our mail, we are sending" in answer.body
    assert "ada.new@example.net" not in answer.body
    confirm, notice = site.mailbox.wait_for(2)
    assert (confirm.recipient, notice.recipient) == ("ada.new@example.net", "ada@example.org")
    assert confirm.message["Subject"] == "Please confirm your new address for The Example Bulletin"
    assert confirm.message["Auto-Submitted"] == "auto-generated"
    html = confirm.message.get_body(("html",))
    assert html is not None and html.get_content().count("<h1") == 1
    assert "ada@example.org" not in confirm.data.decode()  # the old address is not told there
    assert "ada.new@example.net" not in notice.data.decode()  # nor the new one here: masked
    assert mask("ada.new@example.net") in notice.message.get_body(("plain",)).get_content()
    assert link_in(notice.message, site.live.url, "p") == url  # where to cancel it
    link = link_in(confirm.message, site.live.url, "a")
    assert reader_row(site, site.ada.id)[0] == "ada@example.org"  # nothing changed yet
    assert mask("ada.new@example.net") not in http("GET", url).body  # the page names none
    for method in ("GET", "HEAD"):
        assert http(method, link).status == 200
    assert reader_row(site, site.ada.id)[0] == "ada@example.org"
    assert "Confirm my new address" in http("GET", link).body
    for _ in range(2):  # confirmed, then followed again
        done = http("POST", link, b"", FORM)
        assert done.status == 200 and "Your address is changed" in done.body
    assert reader_row(site, site.ada.id) == ("ada.new@example.net", "Ada", "", "active")
    kinds = [(kind, detail) for kind, _, detail in events(site, site.ada.id)]
    assert kinds[1:] == [("address_requested", "preferences"),
                         ("address_changed", "preferences")]  # fmt: skip
    assert memberships(site, site.ada.id) == {"weekly": "confirmed"}
    assert len(site.mailbox.received) == 2


def test_an_expired_replaced_cancelled_or_forged_address_link_is_invalid(
    workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    later = [0.0]
    site = make_site(workspace, smtp, clock=lambda: time.time() + later[0])
    try:
        url = page_url(site)
        request_address(site, url, "first@example.net")
        first = link_in(site.mailbox.wait_for(2)[0].message, site.live.url, "a")
        request_address(site, url, "second@example.net")  # replaces the first
        second = link_in(site.mailbox.wait_for(4)[2].message, site.live.url, "a")
        token = second.rpartition("/")[2]
        stranger = Signer(b"x" * 32).make("a", site.ada.id, 1, 1)
        forged = [first, second[:-1] + ("A" if second[-1] != "A" else "B"),
                  f"{site.live.url}/a/{token.replace('a', 'c', 1)}",
                  f"{site.live.url}/a/{stranger}"]  # fmt: skip
        for link in forged:
            for method in ("GET", "POST"):
                answer = http(method, link, b"" if method == "POST" else None, FORM)
                assert answer.status == 404 and "This link is not valid" in answer.body, link
        later[0] = 8 * DAY  # past [web] confirm_days
        assert http("POST", second, b"", FORM).status == 404
        later[0] = 0.0
        assert post(url, {"action": "cancel"}).status == 200  # withdrawn
        assert http("POST", second, b"", FORM).status == 404
        assert reader_row(site, site.ada.id)[0] == "ada@example.org"
        kinds = [kind for kind, _, _ in events(site, site.ada.id)]
        assert kinds[1:] == ["address_requested", "address_requested", "address_cancelled"]
    finally:
        site.live.stop()


def test_a_taken_blocked_or_erased_address_gets_the_same_answer_and_no_mail(site: Site) -> None:
    with site.live.store() as store:
        subscriptions.add(store, site.double, [Candidate("bob@example.org", False, "Bob")])
        subscriptions.add(store, site.double, [Candidate("gone@example.org", False)])
        suppression.block(store, [Candidate("spam@example.org", False)], site.live.signer().secret)
        erasure.forget(store, "gone@example.org", site.live.signer().secret, None)
    url = page_url(site)
    free = request_address(site, url, "free@example.net")  # mailed after its answer
    for taken in ("bob@example.org", "spam@example.org", "gone@example.org", "ada@example.org"):
        answer = request_address(site, url, taken)
        # The same answer as for a free address: the link holder learns nobody's address.
        shown = answer.body.replace(f"If {mask(taken)} can", f"If {mask('free@example.net')} can")
        assert (answer.status, shown) == (200, free.body), taken
    assert request_address(site, url, "not an address").status == 400
    assert [r.recipient for r in site.mailbox.wait_for(2)] == ["free@example.net",
                                                               "ada@example.org"]  # fmt: skip
    kinds = [kind for kind, _, _ in events(site, site.ada.id)]
    assert kinds == ["subscribed", "address_requested"]
    link = link_in(site.mailbox.received[0].message, site.live.url, "a")
    with site.live.store() as store:  # someone else takes it before the link is followed
        subscriptions.add(store, site.double, [Candidate("free@example.net", False)])
    answer = http("POST", link, b"", FORM)
    assert answer.status == 409 and "Your address was not changed" in answer.body
    assert reader_row(site, site.ada.id)[0] == "ada@example.org"


def test_a_bounced_reader_confirming_a_new_address_is_mailed_again(site: Site) -> None:
    with site.live.store() as store:
        store.execute("UPDATE subscribers SET status = 'bounced' WHERE id = ?", (site.ada.id,))
    url = page_url(site)
    request_address(site, url, "ada@example.net")
    [confirm] = site.mailbox.wait_for(1)  # nothing to the address that bounced
    assert http("POST", link_in(confirm.message, site.live.url, "a"), b"", FORM).status == 200
    assert reader_row(site, site.ada.id) == ("ada@example.net", "Ada", "", "active")
    assert events(site, site.ada.id)[-1] == ("resubscribed", None, "new address")
    request_address(site, url, "ada@example.com")  # active now: the address in use is told
    received = [r.recipient for r in site.mailbox.wait_for(3)]
    assert received == ["ada@example.net", "ada@example.com", "ada@example.net"]


def test_erasing_a_reader_forgets_the_address_they_asked_for(site: Site) -> None:
    request_address(site, page_url(site), "ada@example.net")
    link = link_in(site.mailbox.wait_for(2)[0].message, site.live.url, "a")
    with site.live.store() as store:
        erasure.forget(store, "ada@example.org", site.live.signer().secret, None)
        assert store.query("SELECT email FROM address_changes") == []
    assert http("POST", link, b"", FORM).status == 404
    assert http("GET", page_url(site)).status == 404


# forgery


def test_a_post_without_the_csrf_field_or_from_elsewhere_changes_nothing(site: Site) -> None:
    url = page_url(site)
    good = csrf_of(http("GET", url))
    other = page_url(site, list_id=0)  # another token of the same reader: another field
    attempts = [
        post(url, {"action": "leave"}, csrf=False),
        post(url, {"action": "leave", "csrf": ""}),
        post(url, {"action": "leave", "csrf": csrf_of(http("GET", other))}),
        post(url, {"action": "leave", "csrf": good}, origin="http://evil.example"),
        post(url, {"action": "leave", "csrf": good}, origin="null"),
        post(url, {"action": "leave", "csrf": good}, origin=None),  # neither Origin nor Referer
        post(url, {"action": "address", "email": "eve@example.net", "csrf": "é"}),
        post(url, {"action": "save", "name": "Eve", "shown": str(site.weekly.id)}, csrf=False),
    ]
    for answer in attempts:
        assert answer.status == 403 and "Nothing was changed" in answer.body
    assert memberships(site, site.ada.id) == {"weekly": "confirmed"}
    assert reader_row(site, site.ada.id) == ("ada@example.org", "Ada", "", "active")
    assert events(site, site.ada.id) == [("subscribed", "weekly", "")]
    assert post(url, {"action": "leave", "csrf": good}).status == 200  # the page's own form
    assert memberships(site, site.ada.id) == {"weekly": "unsubscribed"}
    assert site.mailbox.received == []


def test_a_forged_token_or_an_erased_reader_gets_the_invalid_page(site: Site) -> None:
    with site.live.store() as store:
        subscriptions.add(store, site.weekly, [Candidate("gone@example.org", False)])
        gone = store.query_one("SELECT id FROM subscribers WHERE email = 'gone@example.org'")
        erasure.forget(store, "gone@example.org", site.live.signer().secret, None)
    assert gone is not None
    real = page_url(site).rpartition("/")[2]
    signer = site.live.signer()
    bad = [
        real[:-1] + ("A" if real[-1] != "A" else "B"),
        real.replace("p", "u", 1),
        Signer(b"another secret entirely, 32 byte").make("p", site.ada.id, site.weekly.id),
        signer.make("u", site.ada.id, site.weekly.id),  # an unsubscribe token
        signer.make("p", 9999, site.weekly.id),  # nobody behind it
        signer.make("p", gone[0], site.weekly.id),  # erased
    ]
    invalid = http("GET", f"{site.live.url}/u/nope")
    for token in bad:
        for method in ("GET", "POST"):
            answer = http(method, f"{site.live.url}/p/{token}",
                          b"action=leave" if method == "POST" else None, FORM)  # fmt: skip
            assert (answer.status, answer.body) == (404, invalid.body), (token, method)
    assert memberships(site, site.ada.id) == {"weekly": "confirmed"}


def test_a_new_address_waiting_is_part_of_the_readers_own_data(site: Site, mailer: Invoke) -> None:
    """GDPR article 15: `subscribers show` tells the reader of an address they asked for."""
    request_address(site, page_url(site), "ada.new@example.net")
    confirm, _ = site.mailbox.wait_for(2)
    shown = mailer("subscribers", "show", "ada@example.org", "--json")
    assert shown.exit_code == 0, shown.output
    pending = json.loads(shown.stdout)["pending_address"]
    assert pending["email"] == "ada.new@example.net" and pending["requested_at"]
    text = mailer("subscribers", "show", "ada@example.org").stdout
    assert "new address: ada.new@example.net, asked for" in text
    http("POST", link_in(confirm.message, site.live.url, "a"), b"", FORM)
    moved = mailer("subscribers", "show", "ada.new@example.net", "--json")
    assert json.loads(moved.stdout)["pending_address"] is None
