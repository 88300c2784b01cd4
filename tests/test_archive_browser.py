"""The archive serves stored copies, stripped of active content, over HTTP and in Chromium."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from mailer.audience import lists, subscriptions
from mailer.compose.templates import packaged_templates
from mailer.models import Candidate
from mailer.send.campaigns import Campaigns
from mailer.send.recipients import Audience
from tests.conftest import Invoke
from tests.test_web import Live, http, start_web
from tests.test_web_browser import run_mailer

ACTIVE = """---
subject: Active content
---
# Active content

Dear {{ subscriber.name or "reader" }}, the quarter in figures.

<meta http-equiv="refresh" content="0;url=http://evil.example/">
<META HTTP-EQUIV="Set-Cookie" CONTENT="session=stolen">
<meta http-equiv="Content-Security-Policy" content="script-src *">
<base href="http://evil.example/">
<script>window.pwned = 1</script>
<iframe src="http://evil.example/"></iframe>
<object data="http://evil.example/x.swf"></object><embed src="http://evil.example/y.swf">
<p><img src="data:image/png;base64,AAAA" alt="chart" onerror="window.pwned = 2">
<a href="javascript:alert(1)"
onclick="window.pwned = 3">details</a> and <a href="https://example.org/data">the data</a>.</p>
"""
GONE = ["http-equiv", "HTTP-EQUIV", "evil.example", "<script", "pwned", "<iframe", "<object",
        "<embed", "<base", "javascript:", "onerror", "onclick"]  # fmt: skip


@pytest.fixture
def live(workspace: Path) -> Iterator[Live]:
    """A served workspace with its own templates and a public list with one reader."""
    shutil.copytree(packaged_templates(), workspace / "templates")
    page = workspace / "templates" / "newsletter.html.j2"
    page.write_text(page.read_text().replace("{{ newsletter.name }}", "Own masthead"))
    started = start_web(workspace, {})
    with started.store() as store:
        weekly = lists.create(store, "weekly", "Weekly report", public_archive=True,
                              public_form=True)  # fmt: skip
        subscriptions.add(store, weekly, [Candidate("ada@example.org", False, "Ada")])
    yield started
    started.stop()


def stored(workspace: Path, campaign_id: int) -> str:
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db")
    try:
        return str(db.execute("SELECT archive_html FROM campaigns WHERE id = ?",
                              (campaign_id,)).fetchone()[0])  # fmt: skip
    finally:
        db.close()


def test_the_archive_serves_the_stored_copy_without_active_content(
    live: Live, mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "active.md"
    report.write_text(ACTIVE, encoding="utf-8")
    env = {"MAILER_NEWSLETTER_BASE_URL": live.url}
    sent = mailer("send", str(report), "--list", "weekly", "--yes", env=env)
    assert sent.exit_code == 0, sent.output
    copy = stored(workspace, 1)
    assert "Own masthead" in copy and "the quarter in figures" in copy
    assert '<a href="https://example.org/data" style=' in copy and "the data</a>" in copy
    assert (
        '<img src="data:image/png;base64,AAAA" alt="chart" style=' in copy
        and "Dear reader," in copy
    )
    assert f'href="{live.url}/s/weekly"' in copy and "ada@example.org" not in copy
    for active in GONE:
        assert active not in copy, active
    # Nothing is rendered on request: with the workspace's templates broken, or gone, the
    # archive serves the copy made when the campaign was created, byte for byte.
    (workspace / "templates" / "newsletter.html.j2").write_text("{% if %}\n")
    shutil.rmtree(workspace / "templates" / "partials")
    page = http("GET", f"{live.url}/archive/1")
    assert page.status == 200 and page.body == copy
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert "script-src" not in page.headers["content-security-policy"]


def test_campaigns_without_a_stored_copy_and_ids_past_sqlite_are_the_invalid_page(
    live: Live, workspace: Path
) -> None:
    with live.store() as store:  # a campaign stored before copies were: sent, but no copy
        weekly = lists.get(store, "weekly")
        old = Campaigns(store).create(
            Audience((weekly,)), "Old issue", "old.md", "# Old issue\n", {}
        )
    db = sqlite3.connect(workspace / "subscribers" / "mailer.db", isolation_level=None)
    db.execute("UPDATE campaigns SET started_at = '2026-01-01T00:00:00+00:00', status = 'done'")
    db.execute("UPDATE deliveries SET status = 'sent'")
    db.close()
    for path in (f"/archive/{old}", "/archive/0", "/archive/9223372036854775808",
                 "/archive/99999999999999999999999"):  # fmt: skip
        answer = http("GET", live.url + path)
        assert answer.status == 404 and "This link is not valid" in answer.body, path
    assert "Old issue" not in http("GET", f"{live.url}/archive/").body
    assert "Old issue" not in http("GET", f"{live.url}/archive/feed.xml").body


def test_chromium_opens_the_archived_copy_and_nothing_acts(
    browser: Browser, live: Live, workspace: Path
) -> None:
    report = workspace / "active.md"
    report.write_text(ACTIVE, encoding="utf-8")
    env = {"MAILER_NEWSLETTER_BASE_URL": live.url}
    done = run_mailer(workspace, "send", str(report), "--list", "weekly", "--yes", env=env)
    assert done.returncode == 0, done.stderr
    page = browser.new_page()
    try:
        url = f"{live.url}/archive/1"
        page.goto(url, wait_until="load")
        found = page.evaluate(
            "() => [location.href, document.title, window.pwned === undefined, document.cookie,"
            " document.querySelectorAll('meta[http-equiv], script, iframe, object, embed, base,"
            " [onerror], [onclick], a[href^=javascript]').length]"
        )
        assert found == [url, "Active content", True, "", 0]
        assert page.get_by_role("link", name="the data").get_attribute("href") == (
            "https://example.org/data"
        )
    finally:
        page.close()
