"""End to end in headless Chromium: a delivered campaign's unsubscribe link, clicked by a reader."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect, sync_playwright

from mailer.audience import lists
from tests.conftest import EXAMPLE_CSV, EXAMPLE_REPORT
from tests.smtp_servers import LoopbackController, Mailbox
from tests.test_web import confirm_link, http, smtp_environ, start_web

# Debian's chromium, which .ci/run installs; Playwright only drives it (no `playwright install`).
CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield launched
        launched.close()


def run_mailer(
    workspace: Path, *args: str, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """The real CLI in its own process (Playwright's sync API holds this thread's event loop)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MAILER_")}
    command = [sys.executable, "-m", "mailer", "--workspace", str(workspace), *args]
    return subprocess.run(
        command, env={**clean, **env}, capture_output=True, text=True, timeout=120
    )


def membership(workspace: Path, email: str) -> tuple[str, str]:
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    row = db.execute(
        "SELECT m.status, (SELECT detail FROM events e WHERE e.subscriber_id = s.id"
        " ORDER BY e.id DESC LIMIT 1) FROM memberships m JOIN subscribers s"
        " ON s.id = m.subscriber_id WHERE s.email = ?",
        (email,),
    ).fetchone()
    db.close()
    return row[0], row[1]


def test_reader_unsubscribes_from_a_delivered_message_in_chromium(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    live = start_web(workspace, smtp_environ(controller.port))
    try:
        env = {**smtp_environ(controller.port), "MAILER_NEWSLETTER_BASE_URL": live.url}
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

        second = run_mailer(workspace, *send, env=env)
        assert second.returncode == 0, second.stderr
        assert "19 sent" in second.stdout
        again = mailbox.wait_for(39)[20:]
        assert len(again) == 19 and reader not in {r.recipient for r in again}
        assert http("GET", urls[0]).status == 200  # the link still answers, harmlessly
    finally:
        live.stop()


def test_subscribe_form_is_usable_with_the_keyboard_and_labels(
    browser: Browser, workspace: Path, smtp: tuple[LoopbackController, Mailbox]
) -> None:
    controller, mailbox = smtp
    live = start_web(workspace, smtp_environ(controller.port))
    try:
        with live.store() as store:
            lists.create(store, "letters", "Letters", double_opt_in=True)
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
