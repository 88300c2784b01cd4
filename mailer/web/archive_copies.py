"""The archive's Atom feed, each entry linking every edition with its language (hreflang);
archived copies are stored with their campaigns (compose.preview)."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections import OrderedDict
from pathlib import Path
from typing import Any

from mailer.compose.report import Report, parse_report
from mailer.config import Settings
from mailer.db.database import now
from mailer.errors import FileInputError
from mailer.send.campaigns import ArchivedCampaign

ATOM = "http://www.w3.org/2005/Atom"


class Archive:
    """The feed of the public archive; each campaign's front matter is read once (cached)."""

    def __init__(self, settings: Settings, size: int = 128) -> None:
        self.settings, self.size = settings, size
        self.base = settings.newsletter.base_url.rstrip("/")
        self.reports: OrderedDict[int, Report] = OrderedDict()

    def report(self, campaign: ArchivedCampaign) -> Report:
        found = self.reports.get(campaign.id)
        if found is None:
            found = parse_report(campaign.source, Path(campaign.report_path))
            _remember(self.reports, campaign.id, found, self.size)
        return found

    def feed(self, campaigns: list[ArchivedCampaign]) -> bytes:
        """An Atom feed of the campaigns (newest first), each with its preheader as summary."""
        newsletter = self.settings.newsletter
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
            _sub(entry, "category", term=campaign.list.slug, label=campaign.list.name)
        body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _sub(parent: ET.Element, tag: str, text: str = "", **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text:
        element.text = text
    return element


_CACHE_LOCK = threading.Lock()  # the feed is made in Starlette's thread pool


def _remember(cache: OrderedDict[int, Any], key: int, value: Any, size: int) -> None:
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)
