"""The subscribe form asks for consent: only lists the editor opened, only from our own pages,
always double opt-in, the name kept back until the reader confirms, and answers that say the
same whatever the address."""

from __future__ import annotations

import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from mailer import config
from mailer.audience import lists, subscriptions
from mailer.db.opening import open_database
from mailer.models import Candidate
from mailer.web.app import create_app
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import (
    FORM,
    Answer,
    Site,
    confirm_link,
    http,
    make_site,
    post_form,
    smtp_environ,
)


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    """A live site for the test, on each engine in turn."""
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


def same(first: Answer, second: Answer) -> bool:
    """Byte for byte the same answer, but for the Date header."""
    drop = {"date"}
    return (first.status, first.body) == (second.status, second.body) and {
        k: v for k, v in first.headers.items() if k not in drop
    } == {k: v for k, v in second.headers.items() if k not in drop}


def pending_and_name(site: Site, email: str) -> tuple[str, str]:
    with site.live.store() as store:
        row = store.query_one(
            "SELECT m.pending_name, s.name FROM memberships m JOIN subscribers s"
            " ON s.id = m.subscriber_id WHERE s.email = ? AND m.list_id = ?",
            (email, site.double.id),
        )
    assert row is not None
    return row[0], row[1]


# only lists the editor opened


def test_a_closed_form_answers_exactly_like_an_unknown_list(site: Site) -> None:
    with site.live.store() as store:
        closed = lists.create(store, "closed", "Closed", double_opt_in=True)
        subscriptions.add(store, closed, [Candidate("ada@example.org", False)], confirmed=True)
    fields = urllib.parse.urlencode({"email": "eve@example.org"}).encode()
    same_site = {**FORM, "Origin": site.live.url}
    other_site = {**FORM, "Origin": "http://evil.example"}
    requests = [("GET", None, {}), ("HEAD", None, {}), ("POST", fields, same_site),
                ("POST", fields, other_site), ("POST", b"", {})]  # fmt: skip
    for method, body, headers in requests:
        private = http(method, f"{site.live.url}/s/closed", body, headers)
        unknown = http(method, f"{site.live.url}/s/no-such-list", body, headers)
        assert private.status == 404, method
        assert same(private, unknown), method
    assert site.membership(closed, "eve@example.org") is None
    with site.live.store() as store:
        lists.set_public_form(store, "closed", True)
    assert http("GET", f"{site.live.url}/s/closed").status == 200  # the editor opened it
    with site.live.store() as store:
        lists.set_public_form(store, "closed", False)
    assert same(http("GET", f"{site.live.url}/s/closed"), http("GET", f"{site.live.url}/s/nope"))


# only from our own pages


def test_a_post_from_another_site_is_refused_and_changes_nothing(site: Site) -> None:
    url = f"{site.live.url}/s/letters"
    body = urllib.parse.urlencode({"email": "victim@example.org", "name": "Victim"}).encode()
    port = int(site.live.url.rsplit(":", 1)[1])
    hostile = [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},  # a page that hides where it is: no-referrer, a sandbox, data:
        {"Origin": f"http://127.0.0.1:{port + 1}"},  # another port is another site
        {"Origin": f"https://127.0.0.1:{port}"},  # and another scheme
        {"Origin": f"http://127.0.0.1:{port}.evil.example"},
        {"Referer": "http://evil.example/s/letters"},  # no Origin: the Referer speaks
        {"Origin": "http://evil.example", "Referer": f"{site.live.url}/s/letters"},
        {"Host": "evil.example", "Origin": "http://evil.example"},  # DNS rebinding
        {},  # nothing to say where it came from
    ]
    for headers in hostile:
        answer = http("POST", url, body, {**FORM, **headers, "X-Forwarded-For": "192.0.2.9"})
        assert answer.status == 403, headers
        assert "Nothing was changed" in answer.body
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert answer.headers["cache-control"] == "no-store"
    assert site.membership(site.double, "victim@example.org") is None
    assert site.events("victim@example.org") == []
    # The same form from our own page: by its Origin, or by its Referer when it sends none.
    own = [{"Origin": site.live.url}, {"Referer": f"{site.live.url}/s/letters?x=1"}]
    for i, headers in enumerate(own):
        fields = urllib.parse.urlencode({"email": f"own{i}@example.org"}).encode()
        answer = http("POST", url, fields, {**FORM, **headers, "X-Forwarded-For": "192.0.2.9"})
        assert answer.status == 200, headers
    # Refused posts spent nothing of the client's quota (20 an hour) and sent nothing.
    received = [r.recipient for r in site.mailbox.wait_for(2)]
    assert received == ["own0@example.org", "own1@example.org"]


def test_the_base_url_origin_is_accepted_behind_a_proxy(
    workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    """A reverse proxy serves https://news.example.org; the server itself listens on loopback."""
    controller, mailbox = smtp
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    base = "https://news.example.org/letters/"
    environ = {**smtp_environ(controller.port), "MAILER_NEWSLETTER_BASE_URL": base}
    settings = config.load(workspace, environ)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        with open_database(settings) as store:
            lists.create(store, "letters", "Letters", public_form=True)
        form = f"{url}/s/letters"
        origins = [("https://news.example.org", 200), ("https://NEWS.example.org:443", 200),
                   ("http://news.example.org", 403), (url, 200),
                   ("https://news.example.org.evil.example", 403)]  # fmt: skip
        for origin, status in origins:
            body = urllib.parse.urlencode({"email": f"r{status}@example.org"}).encode()
            assert http("POST", form, body, {**FORM, "Origin": origin}).status == status, origin
        assert {r.recipient for r in mailbox.wait_for(3)} == {"r200@example.org"}
    finally:
        server.should_exit = True
        thread.join()


# always double opt-in; the name waits for consent and never reaches the confirmation


def test_the_name_waits_for_consent_and_never_reaches_the_confirmation(site: Site) -> None:
    hostile = "Eve\x00 <b>Mallory</b>\x1b[2J\r\nBcc: x@example.org\x7f\x85 " + "z" * 300
    answer = post_form(f"{site.live.url}/s/letters", {"email": "eve@example.org", "name": hostile})
    assert answer.status == 200
    [received] = site.mailbox.wait_for(1)
    assert b"Mallory" not in received.data and b"Bcc" not in received.data
    assert received.message["To"] == "eve@example.org"
    assert received.message["Bcc"] is None
    cleaned = ("Eve <b>Mallory</b>[2J Bcc: x@example.org " + "z" * 300)[:200]
    assert pending_and_name(site, "eve@example.org") == (cleaned, "")  # kept back
    assert len(cleaned) == 200
    with site.live.store() as store:
        assert store.query_one("SELECT name FROM subscribers WHERE email = ?",
                               ("eve@example.org",)) == ("",)  # fmt: skip
    assert http("POST", confirm_link(received.message, site.live.url), b"", FORM).status == 200
    assert pending_and_name(site, "eve@example.org") == ("", cleaned)  # the reader's word now


def test_a_known_reader_keeps_their_name_whatever_the_form_says(site: Site) -> None:
    with site.live.store() as store:
        subscriptions.add(store, site.weekly, [Candidate("bea@example.org", False, "Bea")])
    post_form(f"{site.live.url}/s/letters", {"email": "bea@example.org", "name": "Mallory"})
    [received] = site.mailbox.wait_for(1)
    assert b"Mallory" not in received.data and b"Bea" not in received.data
    assert pending_and_name(site, "bea@example.org") == ("Mallory", "Bea")
    post_form(f"{site.live.url}/s/letters", {"email": "bea@example.org"})  # asked again, no name
    second = site.mailbox.wait_for(2)[1]
    assert pending_and_name(site, "bea@example.org") == ("", "Bea")  # the last request counts
    assert http("POST", confirm_link(second.message, site.live.url), b"", FORM).status == 200
    assert pending_and_name(site, "bea@example.org") == ("", "Bea")
    assert site.membership(site.double, "bea@example.org") == "confirmed"


def test_control_characters_make_an_address_invalid(site: Site) -> None:
    bad = ["new@example.org\n", "new@example.org\r\nBcc: x@example.org", "\tnew@example.org",
           "ne\x00w@example.org", "new@exam\x7fple.org", "\x1bnew@example.org",
           "new@example.org\x85"]  # fmt: skip
    for email in bad:
        answer = post_form(f"{site.live.url}/s/letters", {"email": email, "name": "New"})
        assert answer.status == 400, repr(email)
        assert 'aria-invalid="true"' in answer.body and "control characters" in answer.body
        assert not any(c in answer.body for c in "\x00\x1b\x7f\x85\t\r")
    post_form(f"{site.live.url}/s/letters", {"email": "barrier@example.org"})
    assert [r.recipient for r in site.mailbox.wait_for(1)] == ["barrier@example.org"]
    assert site.membership(site.double, "new@example.org") is None


def test_an_address_sent_in_another_encoding_is_invalid_not_mangled(site: Site) -> None:
    """A Latin-1 form post (%E9) decodes to U+FFFD: that is no address anyone has, so nothing
    is stored or mailed; the same address sent as UTF-8 is a reader."""
    url = f"{site.live.url}/s/letters"
    origin = {**FORM, "Origin": site.live.url, "X-Forwarded-For": "192.0.2.9"}
    answer = http("POST", url, b"email=caf%E9@example.org", origin)
    assert answer.status == 400 and 'aria-invalid="true"' in answer.body
    assert site.membership(site.double, "caf\ufffd@example.org") is None
    assert post_form(url, {"email": "café@example.org"}).status == 200
    assert [r.recipient for r in site.mailbox.wait_for(1)] == ["café@example.org"]


# the same answer, the same work, one quota per mailbox


def test_plus_tagged_addresses_share_one_quota(site: Site) -> None:
    variants = ["a@x.example", "a+1@x.example", "a+2@x.example", "A+3@X.example"]
    answers = [post_form(f"{site.live.url}/s/letters", {"email": email}, ip=f"198.51.100.{i}")
               for i, email in enumerate(variants)]  # fmt: skip
    assert {a.status for a in answers} == {200} and len({a.body for a in answers}) == 1
    post_form(f"{site.live.url}/s/letters", {"email": "b@x.example"}, ip="198.51.100.9")
    received = [r.recipient for r in site.mailbox.wait_for(4)]
    assert received == ["a@x.example", "a+1@x.example", "a+2@x.example", "b@x.example"]
    assert site.membership(site.double, "a+3@x.example") is None


def test_the_answer_goes_out_before_the_database_is_touched(site: Site) -> None:
    """The handler does the same work for a known and an unknown address: it answers while
    the database cannot be written at all, and the request is stored after the answer."""
    with site.live.store() as store:
        subscriptions.add(store, site.double, [Candidate("old@example.org", False)], confirmed=True)
    with site.live.store() as store, store.transaction():  # nobody else may write meanwhile
        known = post_form(f"{site.live.url}/s/letters", {"email": "old@example.org"})
        unknown = post_form(f"{site.live.url}/s/letters", {"email": "new@example.org"})
        assert known.status == unknown.status == 200
        assert known.body == unknown.body
        assert store.query("SELECT email FROM subscribers") == [("ada@example.org",),
                                                                ("old@example.org",)]  # fmt: skip
    [received] = site.mailbox.wait_for(1)  # stored once the lock went, then mailed
    assert received.recipient == "new@example.org"
    assert site.membership(site.double, "new@example.org") == "unconfirmed"
    assert site.membership(site.double, "old@example.org") == "confirmed"
