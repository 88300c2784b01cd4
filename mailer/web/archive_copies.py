"""The archive's Atom feed: each entry links every edition and carries its default's article."""

from __future__ import annotations

import re
import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from mailer.compose.report import Report, parse_report
from mailer.config import Settings
from mailer.db.database import Database, now
from mailer.errors import FileInputError
from mailer.send.campaigns import ArchivedCampaign, public_campaign

ATOM = "http://www.w3.org/2005/Atom"


class Archive:
    """The feed of the public archive; each campaign's front matter is read, and the article
    taken out of its stored copy, once (cached: neither ever changes)."""

    def __init__(self, settings: Settings, size: int = 128) -> None:
        self.settings, self.size = settings, size
        self.base = settings.newsletter.base_url.rstrip("/")
        self.reports: OrderedDict[int, Report] = OrderedDict()
        self.articles: OrderedDict[int, str] = OrderedDict()

    def report(self, campaign: ArchivedCampaign) -> Report:
        found = self.reports.get(campaign.id)
        if found is None:
            found = parse_report(campaign.source, Path(campaign.report_path))
            _remember(self.reports, campaign.id, found, self.size)
        return found

    def articles_of(self, campaigns: list[ArchivedCampaign], database: Database) -> dict[int, str]:
        """The article of each campaign's default edition, its stored copy read only when it
        is not cached."""
        cached = {c.id: self.articles.get(c.id) for c in campaigns}
        found = {key: article for key, article in cached.items() if article is not None}
        missing = [key for key in cached if key not in found]
        if not missing:
            return found
        for campaign_id in missing:  # copies made by compose.preview, stored with the campaign
            stored = public_campaign(database, campaign_id)
            if stored is not None and stored.html:  # else gone since it was listed
                found[campaign_id] = extract_article(stored.html)
                _remember(self.articles, campaign_id, found[campaign_id], self.size)
        return found

    def feed(self, campaigns: list[ArchivedCampaign], database: Database) -> bytes:
        """An Atom feed of the campaigns (newest first), each with its preheader as summary and
        its article as content (HTML, as its copy in the archive shows it)."""
        newsletter = self.settings.newsletter
        articles = self.articles_of(campaigns, database)
        ET.register_namespace("", ATOM)
        feed = ET.Element(f"{{{ATOM}}}feed")
        _sub(feed, "title", newsletter.name)
        _sub(feed, "id", f"{self.base}/archive/")
        _sub(feed, "link", rel="self", href=f"{self.base}/archive/feed.xml")
        _sub(feed, "link", rel="alternate", type="text/html", href=f"{self.base}/archive/")
        _sub(feed, "updated", campaigns[0].published if campaigns else now())
        author = _sub(feed, "author")
        _sub(author, "name", newsletter.name)
        for campaign in campaigns:
            try:
                report = self.report(campaign)
                writer, summary = report.author, report.preheader
            except FileInputError:  # stored before front matter had its limits
                writer, summary = "", ""
            entry = _sub(feed, "entry")
            url = f"{self.base}/archive/{campaign.id}"
            _sub(entry, "title", campaign.subject)
            _sub(entry, "id", url)
            if not campaign.editions:  # stored before editions: its one copy
                _sub(entry, "link", rel="alternate", type="text/html", href=url)
            for edition in campaign.editions:  # one link per language (RFC 4287 4.2.7.4)
                _sub(entry, "link", rel="alternate", type="text/html", href=url + edition.path,
                     hreflang=edition.lang, title=edition.subject)  # fmt: skip
            _sub(entry, "published", campaign.published)
            _sub(entry, "updated", campaign.published)
            if writer:
                _sub(_sub(entry, "author"), "name", writer)
            _sub(entry, "summary", summary or campaign.subject)
            if articles.get(campaign.id):
                _sub(entry, "content", articles[campaign.id], type="html")
            _sub(entry, "category", term=campaign.list.slug, label=campaign.list.name)
        body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _sub(parent: ET.Element, tag: str, text: str = "", **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text:
        element.text = text
    return element


def extract_article(html: str) -> str:
    """The article of a stored copy: the inside of the element with role="main" in its
    <td class="content">, or of its <body> when it has none (copies made before the template
    said where the article is), or the whole of it without a <body>."""
    reader = _Article(html)
    reader.feed(html)
    reader.close()
    start, end = reader.main  # never closed: its end is the body's (which closes it), or none
    if start is None:  # a copy made before the template marked its article
        start, end = reader.body
    return html.strip() if start is None else html[start:end].strip()


class _Article(HTMLParser):
    """Where the article is, as offsets into the copy: html.parser's reading, the elements
    still open kept on a stack (an end tag closes what it closes, a stray one nothing)."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.lines = [0, *(found.end() for found in re.finditer("\n", html))]
        self.open: list[tuple[str, bool, bool]] = []  # tag, within td.content, the article
        self.main: list[int | None] = [None, None]
        self.body: list[int | None] = [None, None]

    def at(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        after = self.at() + len(self.get_starttag_text() or "")
        if tag == "body" and self.body[0] is None:
            self.body[0] = after
        content = tag == "td" and "content" in (values.get("class") or "").split()
        within = content or (bool(self.open) and self.open[-1][1])
        main = within and self.main[0] is None and (values.get("role") or "").strip() == "main"
        if main:
            self.main[0] = after
        self.open.append((tag, within, main))  # <br> too: the end tag of its parent pops it

    def handle_endtag(self, tag: str) -> None:
        if tag == "body" and self.body[1] is None:
            self.body[1] = self.at()
        names = [name for name, _, _ in self.open]
        if tag not in names:
            return
        index = len(names) - 1 - names[::-1].index(tag)
        if any(main for _, _, main in self.open[index:]):
            self.main[1] = self.at()
        del self.open[index:]


_CACHE_LOCK = threading.Lock()  # the feed is made in Starlette's thread pool


def _remember(cache: OrderedDict[int, Any], key: int, value: Any, size: int) -> None:
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)
