"""The archive's Atom feed as a feed reader gets it from `mailer serve`, after real sends through
the CLI: valid Atom (RFC 4287), each entry carrying its issue's article as HTML content."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mailer.audience import lists, subscriptions
from mailer.models import Candidate
from mailer.web.archive_copies import extract_article
from tests.conftest import EXAMPLE_REPORT, PUBLICATION, Invoke
from tests.test_editions import FRENCH
from tests.test_web import Live, http, start_web

A = "{http://www.w3.org/2005/Atom}"
RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
ADDRESS = "The Vale Bulletin, 2 Mill Lane, Lower Vale"  # PUBLICATION's, in every footer
SENTENCE = "This is the autumn bulletin of the Lower Vale Water Survey"
ENGLISH = """---
subject: The spring issue
---
# The spring issue

Dear {{ subscriber.name or "reader" }}, the river is high this spring.
"""
OLD = """---
subject: An old issue
---
# An old issue

Dear reader, the weir was mended in the summer.
"""


@pytest.fixture
def live(workspace: Path) -> Iterator[Live]:
    """A served workspace with a public list that has one reader."""
    started = start_web(workspace, PUBLICATION)
    with started.store() as store:
        weekly = lists.create(store, "weekly", "Weekly report", public_archive=True)
        subscriptions.add(store, weekly, [Candidate("ada@example.org", False, "Ada")])
    yield started
    started.stop()


def send(mailer: Invoke, live: Live, report: Path) -> None:
    env = {**PUBLICATION, "MAILER_NEWSLETTER_BASE_URL": live.url}
    outbox = live.settings.workspace / "outbox"
    sent = mailer("send", str(report), "--list", "weekly", "--yes", "--outbox", str(outbox),
                  env=env)  # fmt: skip
    assert sent.exit_code == 0, sent.output


def text_of(html: str) -> str:
    """What a feed reader shows of ``html``: its text, spaces made single."""
    parts: list[str] = []
    reader = HTMLParser()
    reader.handle_data = parts.append  # type: ignore[method-assign]
    reader.feed(html)
    reader.close()
    return " ".join("".join(parts).split())


def one(parent: ET.Element, tag: str) -> ET.Element:
    found = parent.findall(f"{A}{tag}")
    assert len(found) == 1, (tag, len(found))
    return found[0]


def test_the_feed_is_atom_with_each_issues_article_as_content(
    live: Live, mailer: Invoke, workspace: Path
) -> None:
    send(mailer, live, EXAMPLE_REPORT)
    issue = workspace / "issues" / "issue.md"
    issue.parent.mkdir()
    issue.write_text(ENGLISH, encoding="utf-8")
    (workspace / "issues" / "issue.fr.md").write_text(FRENCH, encoding="utf-8")
    send(mailer, live, issue)
    answer = http("GET", f"{live.url}/archive/feed.xml")
    assert answer.status == 200
    assert "charset=utf-8" in answer.headers["content-type"].replace(" ", "").lower()
    assert answer.headers["content-type"].startswith("application/atom+xml")
    assert answer.body.startswith('<?xml version="1.0" encoding="utf-8"?>')
    feed = ET.fromstring(answer.body.encode("utf-8"))  # well-formed, or this raises
    assert feed.tag == f"{A}feed"
    assert one(feed, "id").text == f"{live.url}/archive/"
    name = live.settings.newsletter.name  # the masthead, outside the article
    assert one(feed, "title").text == name
    assert RFC3339.fullmatch(one(feed, "updated").text or "")
    assert one(one(feed, "author"), "name").text
    links = feed.findall(f"{A}link")
    assert [link.get("href") for link in links if link.get("rel") == "self"] == [
        f"{live.url}/archive/feed.xml"
    ]
    entries = feed.findall(f"{A}entry")
    assert [one(entry, "id").text for entry in entries] == [
        f"{live.url}/archive/2", f"{live.url}/archive/1"]  # fmt: skip
    for entry in entries:
        assert one(entry, "title").text
        updated = one(entry, "updated").text or ""
        assert RFC3339.fullmatch(updated) and datetime.fromisoformat(updated)
        alternates = [link for link in entry.findall(f"{A}link") if link.get("rel") == "alternate"]
        assert alternates and all(link.get("hreflang") for link in alternates)
        pairs = Counter((link.get("type"), link.get("hreflang")) for link in alternates)
        assert max(pairs.values()) == 1  # RFC 4287 4.1.2: one alternate per type and language
        assert one(entry, "content").get("type") == "html"
        assert one(entry, "summary").text
    editions, example = entries
    hreflang = {link.get("hreflang"): link.get("href") for link in editions.findall(f"{A}link")}
    assert hreflang == {"en": f"{live.url}/archive/2", "fr": f"{live.url}/archive/2/fr"}
    spring = text_of(one(editions, "content").text or "")
    assert "the river is high this spring" in spring  # the default edition's article
    assert "rivière" not in spring and ADDRESS not in spring
    assert [link.get("hreflang") for link in example.findall(f"{A}link")] == ["en"]
    assert one(example, "summary").text == (
        "Results from forty sampling sites, two methodology changes and the plan for winter."
    )
    article = one(example, "content").text or ""
    assert SENTENCE in text_of(article) and "Dear reader," in text_of(article)
    assert ADDRESS not in article and "All issues" not in text_of(article)
    assert 'href="https://example.org/survey/sites/harkers-weir"' in article
    assert "<style" not in article and name not in text_of(article)
    db = sqlite3.connect(live.settings.database_path, isolation_level=None)
    try:  # a stored copy never changes: its article is taken out once, then cached
        db.execute("UPDATE campaigns SET archive_html = '<p>changed</p>' WHERE id = 1")
    finally:
        db.close()
    again = ET.fromstring(http("GET", f"{live.url}/archive/feed.xml").body.encode("utf-8"))
    assert one(again.findall(f"{A}entry")[1], "content").text == article


def test_a_copy_without_a_main_element_gives_its_whole_body(
    live: Live, mailer: Invoke, workspace: Path
) -> None:
    report = workspace / "old.md"
    report.write_text(OLD, encoding="utf-8")
    send(mailer, live, report)
    db = sqlite3.connect(live.settings.database_path, isolation_level=None)
    try:  # as the template made copies before it marked the article
        [[copy]] = db.execute("SELECT archive_html FROM campaigns WHERE id = 1").fetchall()
        assert copy.count('role="main"') == 1
        db.execute("UPDATE campaigns SET archive_html = ? WHERE id = 1",
                   (copy.replace(' role="main"', ""),))  # fmt: skip
    finally:
        db.close()
    feed = ET.fromstring(http("GET", f"{live.url}/archive/feed.xml").body.encode("utf-8"))
    [entry] = feed.findall(f"{A}entry")
    content = one(entry, "content").text or ""
    assert "the weir was mended in the summer" in text_of(content)
    assert ADDRESS in text_of(content)  # the whole body: the footer too
    assert "<body" not in content and "<style" not in content and "@media" not in content


@pytest.mark.parametrize(
    ("html", "article"),
    [
        ('<body><table><tr><td class="content"><div role="main"><p>A<br>b<p>c<div>d</div>'
         '</div></td><td class="footer">addr</td></tr></table></body>',
         "<p>A<br>b<p>c<div>d</div>"),
        ('<body><div role="main">not in the content cell</div><td class="x content">'
         '<div role="main">Here</div></td></body>', "Here"),
        ("<html><head><title>t</title></head><body>\n<p>Old</p>\n</body></html>", "<p>Old</p>"),
        ('<body><td class="content"><div role="main"><p>never closed</body>', "<p>never closed"),
        ('<td class="content"><div role="main">a</span>b</td>c', "a</span>b"),  # a stray end
        ('<td class="content"><div role="main">to the end', "to the end"),
        ("<p>no body at all</p>", "<p>no body at all</p>"),
    ],
)  # fmt: skip
def test_the_article_is_the_inside_of_main_in_the_content_cell(html: str, article: str) -> None:
    assert extract_article(html) == article
