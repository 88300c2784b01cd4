"""End to end in headless Chromium: a delivered campaign's unsubscribe link, clicked by a reader;
the form and its confirmation; and hostile requests that must change nothing."""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from mailer.audience import lists, members, subscriptions
from mailer.models import Candidate
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT, PUBLICATION
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import confirm_link, http, smtp_environ, start_web


def run_mailer(
    workspace: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process (Playwright's sync API holds this thread's event loop)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    command = [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args]
    return subprocess.run(
        command, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def membership(workspace: Path, email: str) -> tuple[str, str] | None:
    """The reader's membership status and the detail of their last event, or None."""
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    row = db.execute(
        "SELECT m.status, (SELECT detail FROM events e WHERE e.subscriber_id = s.id"
        " ORDER BY e.id DESC LIMIT 1) FROM memberships m JOIN subscribers s"
        " ON s.id = m.subscriber_id WHERE s.email = ?",
        (email,),
    ).fetchone()
    db.close()
    return None if row is None else (row[0], row[1])


def test_reader_unsubscribes_from_a_delivered_message_in_chromium(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    live = start_web(workspace, smtp_environ(controller.port))
    try:
        env = {**smtp_environ(controller.port), **PUBLICATION,
               "MAILER_NEWSLETTER_BASE_URL": live.url}  # fmt: skip
        imported = run_mailer(workspace, "subscribers", "import", "example", str(EXAMPLE_CSV),
                              "--create-list", env=env)  # fmt: skip
        assert imported.returncode == 0, imported.stderr
        send = ("send", str(EXAMPLE_REPORT), "--list", "example", "--yes")
        first = run_mailer(workspace, *send, env=env)
        assert first.returncode == 0, first.stderr
        received = mailbox.wait_for(20)
        reader = "jose.alvarez@example.com"
        [message] = [r.message for r in received if r.recipient == reader]
        header = " ".join(str(message["List-Unsubscribe"]).split())
        urls = re.findall(r"<([^>]+)>", header)
        assert urls[0].startswith(f"{live.url}/u/") and urls[1].startswith("mailto:")
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

        page = browser.new_page()
        page.goto(urls[0])
        expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe from example?")
        assert membership(workspace, reader)[0] == "confirmed"  # opening the link changes nothing
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You have been unsubscribed")
        expect(page.get_by_role("button", name="Subscribe again")).to_be_visible()
        page.close()
        assert membership(workspace, reader) == ("unsubscribed", "web")

        second = run_mailer(workspace, *send, "--again", env=env)  # the same report again
        assert second.returncode == 0, second.stderr
        assert "19 sent" in second.stdout
        again = mailbox.wait_for(39)[20:]
        assert len(again) == 19 and reader not in {r.recipient for r in again}
        assert http("GET", urls[0]).status == 200  # the link still answers, harmlessly

        page = browser.new_page()  # the reader changes their mind: the page's own button
        page.goto(urls[0])
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("button", name="Subscribe again").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Welcome back")
        page.close()
        assert membership(workspace, reader) == ("confirmed", "web")
    finally:
        live.stop()


def test_subscribe_form_is_usable_with_the_keyboard_and_labels(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    live = start_web(workspace, smtp_environ(controller.port))
    try:
        with live.store() as store:
            lists.create(store, "letters", "Letters", double_opt_in=True, public_form=True)
        page = browser.new_page()
        page.goto(f"{live.url}/s/letters")
        page.get_by_label("Email address").fill("reader@example.net")
        page.get_by_label("Name (optional)").fill("Reader")
        # The honeypot is out of the accessibility tree and the tab order: two text boxes only.
        expect(page.get_by_role("textbox")).to_have_count(2)
        assert page.locator("#website").get_attribute("tabindex") == "-1"
        page.get_by_label("Email address").press("Enter")
        expect(page.get_by_role("status")).to_contain_text("check your inbox")
        [received] = mailbox.wait_for(1)
        page.goto(confirm_link(received.message, live.url))
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your subscription is confirmed")
        page.close()
        assert membership(workspace, "reader@example.net") == ("confirmed", "web")
    finally:
        live.stop()


# hostile requests, driven from the browser


def subscribe_in(page: Page, url: str, email: str) -> None:
    page.goto(url)
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Subscribe").click()
    expect(page.get_by_role("status")).to_contain_text("check your inbox")


def test_a_head_request_to_an_unsubscribe_link_leaves_the_reader_subscribed(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, _ = smtp
    live = start_web(workspace, smtp_environ(controller.port))
    try:
        with live.store() as store:
            weekly = lists.create(store, "weekly", "Weekly")
            subscriptions.add(store, weekly, [Candidate("ada@example.org", False)])
            ada = members.find(store, weekly, "ada@example.org")
        assert ada is not None
        url = f"{live.url}/u/{live.signer().make('u', ada.id, weekly.id)}"
        page = browser.new_page()
        one_click = {"Content-Type": "application/x-www-form-urlencoded"}
        head = page.request.fetch(url, method="HEAD", headers=one_click,
                                  data="List-Unsubscribe=One-Click")  # fmt: skip
        get = page.request.fetch(url, method="GET")
        assert head.status == get.status == 200 and head.body() == b""
        assert head.headers["content-length"] == get.headers["content-length"]
        assert membership(workspace, "ada@example.org") == ("confirmed", "")
        page.close()
    finally:
        live.stop()


def test_a_stale_confirm_link_shows_the_invalid_page_and_leaves_the_reader_out(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    # The site's clock runs a minute behind: the link is surely older than the unsubscription.
    live = start_web(workspace, smtp_environ(controller.port), clock=lambda: time.time() - 60)
    try:
        with live.store() as store:
            letters = lists.create(store, "letters", "Letters", public_form=True)
        page = browser.new_page()
        subscribe_in(page, f"{live.url}/s/letters", "reader@example.net")
        link = confirm_link(mailbox.wait_for(1)[0].message, live.url)
        page.goto(link)
        page.get_by_role("button", name="Confirm my subscription").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Your subscription is confirmed")
        with live.store() as store:
            reader = members.find(store, letters, "reader@example.net")
        assert reader is not None
        page.goto(f"{live.url}/u/{live.signer().make('u', reader.id, letters.id)}")
        page.get_by_role("button", name="Unsubscribe").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("You have been unsubscribed")
        page.goto(link)  # the old confirmation, opened again
        expect(page.get_by_role("heading", level=1)).to_have_text("This link is not valid")
        expect(page.get_by_role("button")).to_have_count(0)
        assert page.request.post(link, form={}).status == 404  # and pressed anyway
        page.close()
        assert membership(workspace, "reader@example.net") == ("unsubscribed", "web")
    finally:
        live.stop()


HOSTILE = """<!DOCTYPE html><html><head><meta charset="utf-8">{meta}<title>Win a prize</title>
</head><body><form method="post" action="{action}">
<input name="email" value="victim@example.org"><input name="name" value="Mallory"></form>
<script>document.forms[0].submit()</script></body></html>"""


@contextlib.contextmanager
def another_site(pages: dict[str, str]) -> Iterator[str]:
    """A web server of its own on another loopback port (another origin), serving ``pages``."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = pages[self.path].encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_a_form_on_another_site_cannot_subscribe_anyone(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    live = start_web(workspace, smtp_environ(controller.port))
    try:
        with live.store() as store:
            lists.create(store, "letters", "Letters", public_form=True)
        action = f"{live.url}/s/letters"
        pages = {"/prize": HOSTILE.format(meta="", action=action),  # Origin: the other site
                 "/hidden": HOSTILE.format(meta='<meta name="referrer" content="no-referrer">',
                                           action=action)}  # Origin: null  # fmt: skip
        page = browser.new_page()
        with another_site(pages) as other:
            for path in pages:
                with page.expect_response(action) as refused:
                    page.goto(other + path)
                assert refused.value.status == 403, path
                expect(page.get_by_role("alert")).to_contain_text("Nothing was changed")
        assert membership(workspace, "victim@example.org") is None
        subscribe_in(page, action, "reader@example.net")  # our own page's form still works
        page.close()
        assert [r.recipient for r in mailbox.wait_for(1)] == ["reader@example.net"]
        assert membership(workspace, "victim@example.org") is None
    finally:
        live.stop()
