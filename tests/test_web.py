"""`mailer serve`: every route against a real uvicorn server on loopback, real SMTP, real SQLite."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_string, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from mailer import config
from mailer.audience import lists, members, subscriptions
from mailer.compose.confirmation import build_confirmation
from mailer.compose.templates import template_dirs
from mailer.db.database import Database
from mailer.db.opening import open_database
from mailer.db.schema import MIGRATIONS
from mailer.models import Candidate, MailingList, Member
from mailer.send.recipients import Audience, count_eligible
from mailer.tokens import TOKEN, Signer, load_secret
from mailer.web.app import create_app
from mailer.web.site import mask
from tests.conftest import EXAMPLE_REPORT, Invoke, engine_environ
from tests.conftest import store as open_store
from tests.smtp_servers import LoopbackController, Mailbox

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass
class Live:
    """A uvicorn server in a thread, serving create_app() for a temporary workspace."""

    url: str
    settings: config.Settings
    server: uvicorn.Server
    thread: threading.Thread

    def store(self) -> Database:
        return open_database(self.settings)

    def signer(self) -> Signer:
        return Signer(load_secret(self.settings.workspace))

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


def start_web(workspace: Path, environ: dict[str, str], **options: Any) -> Live:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # connections queue in the backlog until uvicorn accepts: no waiting
    url = f"http://127.0.0.1:{listener.getsockname()[1]}"
    environ = {**engine_environ(), **environ, "MAILER_NEWSLETTER_BASE_URL": url}
    settings = config.load(workspace, environ)
    app = create_app(settings, **options)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    return Live(url, settings, server, thread)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def http(
    method: str, url: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> Answer:
    """One request, no cookies, no redirects followed: what a mail provider's client does."""
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=20) as response:
            return Answer(response.status, lower(response.headers), response.read().decode())
    except urllib.error.HTTPError as error:
        return Answer(error.code, lower(error.headers), error.read().decode())


def lower(headers: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


def post_form(url: str, fields: dict[str, str], ip: str = "192.0.2.1") -> Answer:
    """The form sent as a browser sends it from our own page: with the page's Origin."""
    body = urllib.parse.urlencode(fields).encode()
    parts = urllib.parse.urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    return http("POST", url, body, {**FORM, "X-Forwarded-For": ip, "Origin": origin})


def smtp_environ(port: int) -> dict[str, str]:
    return {"MAILER_SMTP_HOST": "127.0.0.1", "MAILER_SMTP_PORT": str(port),
            "MAILER_SMTP_SECURITY": "none"}  # fmt: skip


@dataclass
class Site:
    live: Live
    mailbox: Mailbox
    weekly: MailingList  # single opt-in, public archive, public form
    double: MailingList  # double opt-in, public form
    ada: Member  # confirmed on weekly

    def membership(self, mailing_list: MailingList, email: str) -> str | None:
        with self.live.store() as store:
            found = members.find(store, mailing_list, email)
        return None if found is None else found.status

    def events(self, email: str) -> list[tuple[str, str]]:
        with self.live.store() as store:
            return [(kind, detail) for _, kind, detail in members.events_for(store, email)]

    def token(self, purpose: str, member: Member, mailing_list: MailingList) -> str:
        return self.live.signer().make(purpose, member.id, mailing_list.id)


def make_site(workspace: Path, smtp: tuple[LoopbackController, Mailbox], **options: Any) -> Site:
    controller, mailbox = smtp
    live = start_web(workspace, smtp_environ(controller.port), **options)
    with live.store() as store:
        weekly = lists.create(
            store, "weekly", "Weekly report", public_archive=True, public_form=True
        )
        double = lists.create(store, "letters", "Letters", double_opt_in=True, public_form=True)
        subscriptions.add(store, weekly, [Candidate("ada@example.org", False, "Ada")])
        ada = members.find(store, weekly, "ada@example.org")
    assert ada is not None
    return Site(live, mailbox, weekly, double, ada)


@pytest.fixture
def site(engine: str, workspace: Path, smtp: tuple[LoopbackController, Mailbox]) -> Iterator[Site]:
    """A live site for the test, on each engine in turn."""
    made = make_site(workspace, smtp)
    yield made
    made.live.stop()


# unsubscribe


def test_get_never_unsubscribes_and_the_button_does(site: Site) -> None:
    url = f"{site.live.url}/u/{site.token('u', site.ada, site.weekly)}"
    for _ in range(3):  # a mail scanner following the link, twice, then the reader
        page = http("GET", url)
        assert page.status == 200
        assert site.membership(site.weekly, "ada@example.org") == "confirmed"
    assert '<form method="post"' in page.body and "<button" in page.body
    assert "a…\u2060@example.org" in page.body and "ada@example.org" not in page.body
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    action = re.search(r'action="([^"]+)"', page.body)
    assert action is not None
    done = http("POST", site.live.url + action.group(1), b"", FORM)
    assert done.status == 200 and "You have been unsubscribed" in done.body
    assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"
    assert site.events("ada@example.org")[-1] == ("unsubscribed", "web")
    assert "Subscribe again" in done.body


def test_one_click_post_made_as_gmail_makes_it_unsubscribes_once(site: Site) -> None:
    url = f"{site.live.url}/u/{site.token('u', site.ada, site.weekly)}"
    headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Google"}
    for _ in range(3):  # replayed: same answer, one event
        answer = http("POST", url, b"List-Unsubscribe=One-Click", headers)
        assert answer.status == 200
        assert site.membership(site.weekly, "ada@example.org") == "unsubscribed"
    unsubscribed = [e for e in site.events("ada@example.org") if e[0] == "unsubscribed"]
    assert unsubscribed == [("unsubscribed", "one-click")]
    with site.live.store() as store:  # the next campaign's snapshot leaves Ada out
        assert count_eligible(store, Audience((site.weekly,))) == 0


def test_one_click_post_as_multipart_form_data_unsubscribes(site: Site) -> None:
    url = f"{site.live.url}/u/{site.token('u', site.ada, site.weekly)}"
    body = (
        b'--XyZ\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n--XyZ--\r\n"
    )
    answer = http("POST", url, body, {"Content-Type": "multipart/form-data; boundary=XyZ"})
    assert answer.status == 200
    assert site.events("ada@example.org")[-1] == ("unsubscribed", "one-click")


def test_unsubscribed_reader_can_resubscribe(site: Site) -> None:
    token = site.token("u", site.ada, site.weekly)
    http("POST", f"{site.live.url}/u/{token}", b"List-Unsubscribe=One-Click", FORM)
    page = http("POST", f"{site.live.url}/u/{token}/resubscribe", b"",
                {**FORM, "Origin": site.live.url})  # fmt: skip
    assert page.status == 200 and "subscribed to “Weekly report” again" in page.body
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"
    assert site.events("ada@example.org")[-1] == ("resubscribed", "web")


def test_every_bad_token_gets_the_same_answer(site: Site) -> None:
    real = site.token("u", site.ada, site.weekly)
    other = Signer(b"another secret entirely, 32 byte")
    ghost = Member(9999, "ghost@example.org", "", {}, "confirmed", "active", False)
    bad = [
        "nope",
        real[:-1],
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # tampered signature
        real.replace(".", ".0", 1),  # another list, same signature
        other.make("u", site.ada.id, site.weekly.id),  # signed with another secret
        site.token("u", ghost, site.weekly),  # signed by us, nobody behind it
        site.token("c", site.ada, site.weekly),  # a confirm token on the unsubscribe route
        "u1.1." + "A" * 22,
    ]
    answers = [http(m, f"{site.live.url}/u/{t}", b"" if m == "POST" else None, FORM)
               for t in bad for m in ("GET", "POST")]  # fmt: skip
    answers.append(http("GET", f"{site.live.url}/c/{real}"))  # unsubscribe token, confirm route
    answers.append(http("GET", f"{site.live.url}/s/no-such-list"))
    answers.append(http("GET", f"{site.live.url}/no/such/page"))
    # A NUL, an escape or a byte that is not UTF-8 in a slug, token or name (PostgreSQL refused
    # the NUL: a 503, and the path in the log as it came)
    for path in ("/s/%00x", "/s/weekly%1b", f"/u/{real}%00", "/p/%E9x", "/archive/1/%00",
                 "/media/%00x.png", "/a/%00"):  # fmt: skip
        answers.append(http("GET", f"{site.live.url}{path}"))
    assert {a.status for a in answers} == {404}
    assert len({a.body for a in answers}) == 1
    assert "This link is not valid" in answers[0].body
    assert site.membership(site.weekly, "ada@example.org") == "confirmed"
    assert site.events("ada@example.org") == [("subscribed", "")]


# the subscribe form and double opt-in


def confirm_link(message: EmailMessage, base: str) -> str:
    text = message.get_body(("plain",))
    assert text is not None
    found = re.search(re.escape(base) + r"/c/\S+", text.get_content())
    assert found is not None
    return found.group()


def test_double_opt_in_form_sends_a_confirmation_and_post_confirms(site: Site) -> None:
    form = http("GET", f"{site.live.url}/s/letters")
    assert form.status == 200
    assert '<label for="email">' in form.body and 'name="website"' in form.body
    answer = post_form(f"{site.live.url}/s/letters", {"email": "Bea@Example.org", "name": "Bea"})
    assert answer.status == 200 and "check your inbox" in answer.body
    [received] = site.mailbox.wait_for(1)  # the request is stored, then the message goes out
    assert site.membership(site.double, "bea@example.org") == "unconfirmed"
    message = received.message
    assert received.recipient == "bea@example.org"
    assert message["Subject"] == "Please confirm your subscription to Letters"
    assert message["Auto-Submitted"] == "auto-generated" and message["List-Unsubscribe"] is None
    link = confirm_link(message, site.live.url)
    html = message.get_body(("html",))
    assert html is not None and f'href="{link}"' in html.get_content()
    page = http("GET", link)
    assert page.status == 200 and "Confirm my subscription" in page.body
    assert site.membership(site.double, "bea@example.org") == "unconfirmed"
    for _ in range(2):
        done = http("POST", link, b"", FORM)
        assert done.status == 200 and "Your subscription is confirmed" in done.body
    assert site.membership(site.double, "bea@example.org") == "confirmed"
    events = site.events("bea@example.org")
    assert events == [("subscribed", "web form"), ("confirmed", "web")]


def test_a_confirm_link_is_good_only_for_its_request_and_its_days(
    workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    later = [-60.0]  # seconds the site's clock runs ahead of this one: a minute behind, first
    site = make_site(workspace, smtp, clock=lambda: time.time() + later[0])
    try:
        post_form(f"{site.live.url}/s/letters", {"email": "cy@example.org"})
        [received] = site.mailbox.wait_for(1)
        link = confirm_link(received.message, site.live.url)
        assert http("POST", link, b"", FORM).status == 200
        with site.live.store() as store:
            subscriptions.unsubscribe(store, site.double, "cy@example.org", "test")
            cy = members.find(store, site.double, "cy@example.org")
        assert cy is not None
        later[0] = 0.0  # having left, the reader asks again
        for method in ("GET", "HEAD", "POST"):  # the old link cannot bring them back
            assert http(method, link, b"", FORM).status == 404
        assert site.membership(site.double, "cy@example.org") == "unsubscribed"
        post_form(f"{site.live.url}/s/letters", {"email": "cy@example.org"})
        fresh = confirm_link(site.mailbox.wait_for(2)[1].message, site.live.url)
        issued = int(time.time() + later[0])
        stale = site.live.signer().make("c", cy.id, site.double.id, issued - 8 * 86_400)
        assert http("POST", f"{site.live.url}/c/{stale}", b"", FORM).status == 404  # > 7 days
        later[0] += 8 * 86_400  # the fresh link, too, is good for [web] confirm_days only
        assert http("POST", fresh, b"", FORM).status == 404
        later[0] -= 8 * 86_400
        assert http("POST", fresh, b"", FORM).status == 200, site.events("cy@example.org")
        assert site.membership(site.double, "cy@example.org") == "confirmed", (fresh, link)
        assert site.events("cy@example.org")[-1] == ("resubscribed", "web")
    finally:
        site.live.stop()


def test_the_form_is_double_opt_in_on_a_single_opt_in_list_too(site: Site) -> None:
    assert not site.weekly.double_opt_in  # single opt-in is for the editor's own additions
    answer = post_form(f"{site.live.url}/s/weekly", {"email": "cy@example.org", "name": "  Cy "})
    assert answer.status == 200 and "check your inbox" in answer.body
    [received] = site.mailbox.wait_for(1)
    assert received.recipient == "cy@example.org"
    assert site.membership(site.weekly, "cy@example.org") == "unconfirmed"
    with site.live.store() as store:
        member = members.find(store, site.weekly, "cy@example.org")
        assert member is not None and member.name == ""  # not the reader's word yet
        assert store.query_one("SELECT pending_name FROM memberships WHERE subscriber_id = ?",
                               (member.id,)) == ("Cy",)  # fmt: skip
        assert count_eligible(store, Audience((site.weekly,))) == 1  # Ada only, until Cy confirms
    assert http("POST", confirm_link(received.message, site.live.url), b"", FORM).status == 200
    assert site.membership(site.weekly, "cy@example.org") == "confirmed"
    assert site.events("cy@example.org") == [("subscribed", "web form"), ("confirmed", "web")]


def test_answer_never_reveals_whether_an_address_was_on_the_list(site: Site) -> None:
    with site.live.store() as store:
        subscriptions.add(store, site.double, [Candidate("old@example.org", False)], confirmed=True)
        subscriptions.add(store, site.double, [Candidate("wait@example.org", False)])
        subscriptions.add(
            store, site.double, [Candidate("gone@example.org", False)], confirmed=True
        )
        subscriptions.unsubscribe(store, site.double, "gone@example.org", "test")
        subscriptions.add(
            store, site.double, [Candidate("spam@example.org", False)], confirmed=True
        )
        store.execute("UPDATE subscribers SET status = 'blocklisted' WHERE email = ?",
                      ("spam@example.org",))  # fmt: skip
    addresses = ["new@example.org", "old@example.org", "wait@example.org",
                 "gone@example.org", "spam@example.org"]  # fmt: skip
    answers = [post_form(f"{site.live.url}/s/letters", {"email": a}) for a in addresses]
    assert {a.status for a in answers} == {200}
    assert len({a.body for a in answers}) == 1
    post_form(f"{site.live.url}/s/letters", {"email": "last@example.org"})
    received = site.mailbox.wait_for(4)  # confirmations go out in order: 'last' comes last
    assert [r.recipient for r in received] == [
        "new@example.org", "wait@example.org", "gone@example.org", "last@example.org"]  # fmt: skip
    # Asked again: still unsubscribed until the link of this new request is followed.
    assert site.membership(site.double, "gone@example.org") == "unsubscribed"
    assert site.membership(site.double, "old@example.org") == "confirmed"
    gone = confirm_link(received[2].message, site.live.url)
    http("POST", gone, b"", FORM)
    assert site.membership(site.double, "gone@example.org") == "confirmed"


def test_invalid_address_shows_the_form_again(site: Site) -> None:
    answer = post_form(f"{site.live.url}/s/weekly", {"email": "not an address", "name": "X"})
    assert answer.status == 400
    assert 'aria-invalid="true"' in answer.body and 'value="not an address"' in answer.body
    with site.live.store() as store:
        assert store.query_one("SELECT COUNT(*) FROM subscribers") == (1,)


def test_honeypot_answers_like_success_and_does_nothing(site: Site) -> None:
    trap = {"email": "victim@example.org", "website": "http://spam.example"}
    caught = post_form(f"{site.live.url}/s/letters", trap)
    real = post_form(f"{site.live.url}/s/letters", {"email": "human@example.org"})
    assert caught.status == real.status == 200 and caught.body == real.body
    assert [r.recipient for r in site.mailbox.wait_for(1)] == ["human@example.org"]
    assert site.membership(site.double, "victim@example.org") is None
    assert site.events("victim@example.org") == []


def test_rate_limits_per_ip_and_per_address(
    workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    made = make_site(workspace, smtp, ip_limit=(3, 3600.0), address_limit=(2, 3600.0))
    try:
        url = f"{made.live.url}/s/letters"
        bomb = [post_form(url, {"email": "target@example.org"}, ip=f"198.51.100.{i}")
                for i in range(4)]  # fmt: skip
        assert {a.status for a in bomb} == {200} and len({a.body for a in bomb}) == 1
        flood = [post_form(url, {"email": f"r{i}@example.org"}, ip="203.0.113.5")
                 for i in range(4)]  # fmt: skip
        assert [a.status for a in flood] == [200, 200, 200, 429]
        assert flood[3].headers["retry-after"] == "3600"
        assert made.membership(made.double, "r3@example.org") is None
        post_form(url, {"email": "barrier@example.org"}, ip="192.0.2.77")
        received = [r.recipient for r in made.mailbox.wait_for(6)]
        assert received[-1] == "barrier@example.org"
        assert received.count("target@example.org") == 2 and len(received) == 6
    finally:
        made.live.stop()


# the archive


def test_archive_shows_public_campaigns_without_personal_data(
    site: Site, mailer: Invoke, workspace: Path
) -> None:
    env = {"MAILER_NEWSLETTER_BASE_URL": site.live.url}
    with site.live.store() as store:
        private = lists.create(store, "private", "Private")
        subscriptions.add(store, private, [Candidate("ada@example.org", False, "Ada")])
    second = workspace / "second.md"
    second.write_text(EXAMPLE_REPORT.read_text().replace("Autumn 2026", "Winter 2026"))
    for report, slug in ((EXAMPLE_REPORT, "weekly"), (EXAMPLE_REPORT, "private"),
                         (second, "weekly")):  # fmt: skip
        result = mailer("send", str(report), "--list", slug, "--yes", "--outbox",
                        str(workspace / "out"), env=env)  # fmt: skip
        assert result.exit_code == 0, result.output
    index = http("GET", f"{site.live.url}/archive/")
    assert index.status == 200
    listed = re.findall(r'href="/archive/(\d+)">([^<]+)<', index.body)
    assert [(i, s[24:37]) for i, s in listed] == [("3", " Winter 2026 "), ("1", " Autumn 2026 ")]
    page = http("GET", f"{site.live.url}/archive/1")
    assert page.status == 200 and "Autumn 2026 Quarterly Report" in page.body
    assert "Dear reader" in page.body and "ada@example.org" not in page.body
    assert "Ada" not in page.body and not TOKEN.search(page.body) and "/u/" not in page.body
    assert f'href="{site.live.url}/s/weekly"' in page.body
    assert http("GET", f"{site.live.url}/archive/2").status == 404  # private list
    assert http("GET", f"{site.live.url}/archive/99").status == 404
    feed = http("GET", f"{site.live.url}/archive/feed.xml")
    assert feed.headers["content-type"] == "application/atom+xml; charset=utf-8"  # not Latin-1
    atom = "{http://www.w3.org/2005/Atom}"
    root = ET.fromstring(feed.body.encode())
    entries = root.findall(f"{atom}entry")
    assert [e.findtext(f"{atom}id") for e in entries] == [
        f"{site.live.url}/archive/3", f"{site.live.url}/archive/1"]  # fmt: skip
    assert entries[1].findtext(f"{atom}summary", "").startswith("Results from forty")
    with site.live.store() as store:
        lists.set_public_archive(store, "weekly", False)
    assert http("GET", f"{site.live.url}/archive/1").status == 404
    assert "No issues have been published yet" in http("GET", f"{site.live.url}/archive/").body
    assert http("GET", site.live.url + "/").headers["location"] == "/archive/"


# the confirmation message and the server process


def test_confirmation_message_is_well_formed_for_a_utf8_reader(workspace: Path) -> None:
    settings = config.load(workspace, {})
    mailing_list = MailingList(1, "letters", "Lettres “choisies”", True)
    member = Member(7, "zoë@exämple.org", "Zoë\nBrontë", {}, "unconfirmed", "active", True)
    url = "https://news.example.org/c/c7.1.AAAAAAAAAAAAAAAAAAAAAA"
    data = build_confirmation(
        settings.newsletter, mailing_list, member, url, template_dirs(settings.templates_dir)
    )
    assert all(len(line) <= 78 for line in data.split(b"\r\n"))
    message = message_from_string(data.decode("utf-8"), policy=policy.SMTPUTF8)
    assert isinstance(message, EmailMessage)
    assert message["To"].addresses[0].addr_spec == "zoë@exämple.org"
    assert message["To"].addresses[0].display_name == ""  # the confirmation names nobody
    assert message["Subject"] == "Please confirm your subscription to Lettres “choisies”"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and url in text.get_content() and "Brontë" not in text.get_content()
    assert text.get_content().startswith("Hello,\r\n")
    assert html is not None and "Lettres “choisies”" in html.get_content()
    assert "Brontë" not in html.get_content() and "Brontë" not in data.decode()
    assert "&ldquo;" not in html.get_content() and f'href="{url}"' in html.get_content()


@pytest.mark.usefixtures("engine")
def test_cli_public_archive_flags_and_double_opt_in_add(mailer: Invoke, workspace: Path) -> None:
    created = mailer("lists", "create", "weekly", "--public-archive")
    assert created.exit_code == 0 and "public archive" in created.stdout
    assert mailer("lists", "set", "weekly", "--no-public-archive").exit_code == 0
    with open_store(workspace) as store:
        assert not lists.get(store, "weekly").public_archive
    assert mailer("lists", "set", "weekly", "--public-archive").exit_code == 0
    with open_store(workspace) as store:
        assert lists.get(store, "weekly").public_archive
    assert mailer("lists", "set", "weekly").exit_code == 1
    assert mailer("lists", "create", "letters", "--double-opt-in").exit_code == 0
    added = mailer("subscribers", "add", "letters", "bea@example.org")
    assert added.exit_code == 0 and "a message to confirm" in added.stdout
    [path] = (workspace / "outbox" / "new").iterdir()
    message = message_from_string(path.read_text(), policy=policy.default)
    assert isinstance(message, EmailMessage)
    assert confirm_link(message, "http://127.0.0.1:8000").startswith("http://127.0.0.1:8000/c/c")
    listed = mailer("subscribers", "ls", "letters").stdout
    assert [line.split("\t")[:3] for line in listed.splitlines()[1:]] == [
        ["bea@example.org", "", "unconfirmed"]
    ]


def test_mailer_serve_prints_its_address_and_stops_on_ctrl_c(workspace: Path) -> None:
    command = [sys.executable, "-m", "mailer", "-w", str(workspace), "serve", "--port", "0"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=clean)  # fmt: skip
    try:
        assert process.stdout is not None
        found = re.match(r"serving on (http://127\.0\.0\.1:\d+) ", process.stdout.readline())
        assert found is not None
        assert http("GET", found.group(1) + "/archive/").status == 200
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out == "stopped\n" and err == ""
    assert sqlite3.connect(workspace / "subscribers" / "mailer.db").execute(
        "PRAGMA user_version"
    ).fetchone() == (len(MIGRATIONS),)  # serve migrates the database it opens


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("reader1@example.net", "re…\u2060r1@example.net"),
        ("ada@example.org", "a…\u2060@example.org"),
        ("jean-luc.picard@star-fleet.example", "je…\u2060rd@star\u2011fleet.example"),
    ],
)
def test_a_masked_address_is_recognisable_and_in_one_piece(address: str, shown: str) -> None:
    assert mask(address) == shown
    local = address.partition("@")[0]
    assert local not in shown or len(local) <= 2  # never the whole name
