"""What the web side shows: Jinja pages, archived campaigns without personal data, the Atom feed."""

from __future__ import annotations

import threading
import time
import xml.etree.ElementTree as ET
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jinja2

from mailer.config import Settings
from mailer.errors import FileInputError
from mailer.render import PLACEHOLDER_READER, CompiledCampaign, Links, template_dirs
from mailer.report import Report, parse_report
from mailer.store import now
from mailer.subscriptions import ArchivedCampaign

ATOM = "http://www.w3.org/2005/Atom"
# Archived copies speak to nobody in particular: the footer reads "because your address is ...".
ARCHIVE_READER = replace(PLACEHOLDER_READER, email="your address", name="")


class Pages:
    """Renders templates/web/NAME.html.j2 (a workspace may override them file by file)."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(settings.templates_dir)]),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
        )
        self.globals = {"newsletter": settings.newsletter, "prefix": prefix}

    def render(self, name: str, /, **context: Any) -> str:
        try:
            template = self.env.get_template(f"web/{name}.html.j2")
        except jinja2.TemplateNotFound:
            raise FileInputError(f"web/{name}.html.j2", "template not found") from None
        except jinja2.TemplateSyntaxError as error:
            where = error.filename or name
            raise FileInputError(where, error.message or "", error.lineno) from None
        return template.render({**self.globals, **context})


class Archive:
    """Renders stored campaigns for the public archive, once each (a small cache)."""

    def __init__(self, settings: Settings, prefix: str, size: int = 32) -> None:
        self.settings, self.prefix, self.size = settings, prefix, size
        self.base = settings.newsletter.base_url.rstrip("/")
        self.pages: OrderedDict[int, str] = OrderedDict()
        self.reports: OrderedDict[int, Report] = OrderedDict()

    def report(self, campaign: ArchivedCampaign) -> Report:
        found = self.reports.get(campaign.id)
        if found is None:
            found = parse_report(campaign.source, Path(campaign.report_path))
            _remember(self.reports, campaign.id, found, self.size * 4)
        return found

    def html(self, campaign: ArchivedCampaign) -> str:
        """The campaign's HTML as readers saw it, minus anything personal: no address, no
        token; its unsubscribe link leads to the list's subscribe page."""
        found = self.pages.get(campaign.id)
        if found is not None:
            return found
        compiled = CompiledCampaign(
            self.report(campaign),
            self.settings.newsletter,
            campaign.list,
            templates=template_dirs(self.settings.templates_dir),
            campaign_id=f"archive{campaign.id}",
        )
        links = Links(unsubscribe=f"{self.base}/s/{campaign.list.slug}", view_online="")
        html = compiled.parts(ARCHIVE_READER, links)[0]
        _remember(self.pages, campaign.id, html, self.size)
        return html

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
            report = self.report(campaign)
            entry = _sub(feed, "entry")
            url = f"{self.base}/archive/{campaign.id}"
            _sub(entry, "title", campaign.subject)
            _sub(entry, "id", url)
            _sub(entry, "link", rel="alternate", type="text/html", href=url)
            _sub(entry, "published", campaign.published)
            _sub(entry, "updated", campaign.published)
            if report.author:
                _sub(_sub(entry, "author"), "name", report.author)
            _sub(entry, "summary", report.preheader or campaign.subject)
            _sub(entry, "category", term=campaign.list.slug, label=campaign.list.name)
        body: bytes = ET.tostring(feed, encoding="utf-8", xml_declaration=False)
        return b'<?xml version="1.0" encoding="utf-8"?>\n' + body


def _sub(parent: ET.Element, tag: str, text: str = "", **attributes: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attributes)
    if text:
        element.text = text
    return element


_CACHE_LOCK = threading.Lock()  # archive pages render in Starlette's thread pool


def _remember(cache: OrderedDict[int, Any], key: int, value: Any, size: int) -> None:
    with _CACHE_LOCK:
        cache[key] = value
        while len(cache) > size:
            cache.popitem(last=False)


class SlidingWindow:
    """At most ``limit`` events per key in any ``period`` seconds (in memory, one process)."""

    def __init__(
        self, limit: int, period: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.period, self.clock = limit, period, clock
        self.hits: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False when it is over the limit (not counted then)."""
        at = self.clock()
        if len(self.hits) > 10_000:
            self.hits = {k: q for k, q in self.hits.items() if q and q[-1] > at - self.period}
        window = self.hits.setdefault(key, deque())
        while window and window[0] <= at - self.period:
            window.popleft()
        if len(window) >= self.limit:
            return False
        window.append(at)
        return True


def mask(address: str) -> str:
    """Show enough of an address for its owner to recognise it: a…@example.org."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}…@{domain}" if local else address
