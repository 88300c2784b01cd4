"""A report rendered for one reader (message.eml, .html, .txt) or for nobody (the archive)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from email.errors import HeaderParseError, NonASCIILocalPartDefect
from email.headerregistry import AddressHeader, HeaderRegistry
from html import escape
from html.parser import HTMLParser
from pathlib import Path

from email_validator import EmailNotValidError, validate_email
from markdown_it.common.utils import escapeHtml

from mailer.compose.compiled import CompiledCampaign, Links, preview_links
from mailer.compose.editions import (
    CompiledEditions,
    Compiler,
    Edition,
    choose_edition,
    edition_for,
    read_editions,
)
from mailer.compose.images import publish
from mailer.compose.report import load_report
from mailer.config import Settings
from mailer.errors import AddressError, FileInputError, NotFoundError
from mailer.models import PLACEHOLDER_READER, MailingList, Member, Reader

CONTROLS = re.compile(r"[\x00-\x1f\x7f]")  # as mailer.audience.cleaning.has_controls


def preview_list(settings: Settings) -> MailingList:
    """The stand-in list used when no list is named."""
    return MailingList(id=0, slug="preview", name=settings.newsletter.name, double_opt_in=False)


def parse_reader(to: str) -> tuple[str, str, bool]:
    """``--to``: one address, bare or as ``Name <address>``: (display name, address as
    mailer.audience.addresses.normalise makes it, smtputf8), else AddressError."""
    try:
        header = HeaderRegistry()("To", to)
    except (HeaderParseError, ValueError, IndexError) as error:
        raise AddressError(to, str(error)) from None
    addresses = header.addresses if isinstance(header, AddressHeader) else ()
    if len(addresses) != 1:
        raise AddressError(to, "more than one address" if addresses else "empty address")
    [found] = addresses
    if CONTROLS.search(to):
        raise AddressError(to, "contains a line break or another control character")
    # As normalise() does: compose may not import mailer.audience (tests/test_architecture.py).
    try:
        valid = validate_email(found.addr_spec, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise AddressError(to, str(error)) from None
    defects = [d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)]
    if defects:
        raise AddressError(to, str(defects[0]))
    return " ".join(found.display_name.split()), valid.normalized.lower(), valid.smtputf8


def choose_reader(members: list[Member], to: str | None, list_slug: str) -> Reader:
    """The member ``to`` names (an address, with or without a display name), else the list's
    first member, else a placeholder reader; a display name given is the reader's name."""
    if to is None:
        return members[0].reader if members else PLACEHOLDER_READER
    name, email, smtputf8 = parse_reader(to)
    for member in members:
        if member.email.casefold() == email:
            return replace(member.reader, name=name) if name else member.reader
    if list_slug:
        raise NotFoundError("subscriber", email, f"not on list {list_slug!r}")
    return replace(PLACEHOLDER_READER, email=email, name=name, smtputf8=smtputf8)


def render_preview(
    report_path: Path,
    settings: Settings,
    out_dir: Path,
    *,
    mailing_list: MailingList | None = None,
    members: Iterable[Member] = (),
    email: str | None = None,
    language: str | None = None,
    strict: bool = False,
    editions: Sequence[Edition] | None = None,
) -> list[Path]:
    """Write the three files for one reader, in the edition of ``language``, else in the one
    that reader gets (as a send chooses it). With a list, or ``strict``, every edition is
    compiled, and each member given is checked in the edition they get, as a send would.
    ``editions``: the report's, when the caller has read them already."""
    if editions is None:
        editions = read_editions(load_report(report_path))
    everyone = list(members)
    reader = choose_reader(everyone, email, mailing_list.slug if mailing_list else "")
    listing = mailing_list or preview_list(settings)
    shown = choose_edition(editions, language) if language is not None else None
    compiler = Compiler(settings, listing, "preview", publish=False)
    if strict or mailing_list is not None:
        compiled = CompiledEditions([edition.report for edition in editions], compiler)
        compiled.check(everyone)
        chosen = compiled.editions[shown.lang] if shown else compiled.for_reader(reader)
        campaign = chosen.campaign
    else:
        campaign = compiler(shown or edition_for(editions, reader.lang))
    links = preview_links(settings.newsletter.base_url)
    html, text = campaign.parts(reader, links)
    message = campaign.message(reader, links)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = [out_dir / "message.eml", out_dir / "message.html", out_dir / "message.txt"]
        paths[0].write_bytes(message)
        paths[1].write_text(_with_local_images(html, campaign, out_dir), encoding="utf-8")
        paths[2].write_text(text, encoding="utf-8")
    except OSError as error:
        raise FileInputError(out_dir, error.strerror or str(error)) from None
    return paths


def _with_local_images(html: str, campaign: CompiledCampaign, out_dir: Path) -> str:
    """``html`` showing the campaign's images from files written beside it (media/NAME),
    exactly as readers get them, whether the message links to them or carries them."""
    for placed in campaign.images.placed:
        publish(out_dir / "media", placed.picture)
        html = html.replace(f'"{escapeHtml(placed.reference)}"', f'"media/{placed.picture.name}"')
    return html


def _with_hosted_images(html: str, campaign: CompiledCampaign) -> str:
    """``html`` with inline (cid:) images shown from `mailer serve`, as a web page can."""
    for placed in campaign.images.placed:
        if placed.reference != placed.url:
            html = html.replace(f'"{escapeHtml(placed.reference)}"', f'"{escapeHtml(placed.url)}"')
    return html


# Archived copies speak to nobody in particular: the footer reads "because your address is ...".
ARCHIVE_READER = replace(PLACEHOLDER_READER, email="your address", name="")
# Elements dropped with all they hold: scripts, other documents, and the elements whose content
# browsers parse differently from html.parser (raw text, foreign SVG and MathML).
DROP_ALL = frozenset({"script", "iframe", "object", "applet", "frameset", "noscript", "noembed",
                      "noframes", "template", "svg", "math", "xmp", "plaintext"})  # fmt: skip
DROP_TAG = frozenset({"base", "embed", "frame", "link", "portal"})
VOID = frozenset({"area", "br", "col", "hr", "img", "input", "meta", "source", "track", "wbr"})
URLS = frozenset({"href", "src", "action", "formaction", "xlink:href", "background",
                  "poster", "data", "codebase", "cite", "longdesc", "srcset"})  # fmt: skip
NAME = re.compile(r"[a-z_][-a-z0-9_:.]*")


def archive_copy(campaign: CompiledCampaign, base_url: str, published: str = "") -> str:
    """The campaign's HTML as a web page: the readers' message minus anything personal (no
    address, no token) and anything that acts on a visitor, with a page footer of its own (the
    publication, its subscribe form, the archive) and its ``published`` date (default today)."""
    base = base_url.rstrip("/")
    form = f"{base}/s/{campaign.list.slug}" if campaign.list.public_form else ""
    links = Links(unsubscribe="", subscribe=form, archive=f"{base}/archive/",
                  published=published or datetime.now(UTC).date().isoformat())  # fmt: skip
    return strip_active(_with_hosted_images(campaign.parts(ARCHIVE_READER, links)[0], campaign))


def strip_active(html: str) -> str:
    """``html`` without what acts on whoever opens it: scripts, frames, plugins, <base>,
    <link>, <meta http-equiv> (refresh, cookies, policies), on* handlers, javascript: URLs.
    What is kept is written anew from html.parser's reading, so a browser reads it the same."""
    stripper = _Stripper()
    stripper.feed(html)
    stripper.close()
    return "".join(stripper.out)


def _harmless(tag: str, name: str, value: str | None) -> bool:
    if not NAME.fullmatch(name) or name.startswith("on") or name in ("srcdoc", "ping"):
        return False
    bare = "".join(c for c in value or "" if c > " " and c != "\x7f").lower()
    if bare.startswith(("javascript:", "vbscript:")):
        return False
    if name == "style" and any(w in bare for w in ("expression(", "javascript:", "binding")):
        return False
    image = tag == "img" and name == "src" and bare.startswith("data:image/")
    return not (name in URLS and bare.startswith("data:") and not image)


class _Stripper(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip, self.depth, self.style = "", 0, False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start(tag, attrs, False)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.start(tag, attrs, True)

    def start(self, tag: str, attrs: list[tuple[str, str | None]], closed: bool) -> None:
        if self.skip:
            self.depth += tag == self.skip and not closed
            return
        if tag in DROP_ALL and not closed:
            self.skip, self.depth = tag, 1
            return
        if tag in DROP_ALL or tag in DROP_TAG or not NAME.fullmatch(tag):
            return
        if tag == "meta" and any(name == "http-equiv" for name, _ in attrs):
            return
        kept = "".join(
            f" {name}" if value is None else f' {name}="{escape(value)}"'
            for name, value in attrs
            if _harmless(tag, name, value)
        )
        # <x/> is <x> to a browser: a non-void one is closed here, so both read it alike
        self.out.append(f"<{tag}{kept}>" + (f"</{tag}>" if closed and tag not in VOID else ""))
        self.style = tag == "style" and not closed

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            self.depth -= tag == self.skip
            self.skip = self.skip if self.depth else ""
        elif tag not in DROP_ALL and tag not in DROP_TAG and NAME.fullmatch(tag):
            self.out.append(f"</{tag}>")
            self.style = False

    def handle_data(self, data: str) -> None:
        if not self.skip:
            # style text is CSS, written raw: no "<" in it can close the element early
            self.out.append(data.replace("<", "\\3c ") if self.style else escape(data, False))

    def handle_decl(self, decl: str) -> None:
        if decl.lower().startswith("doctype") and not self.skip:
            self.out.append("<!DOCTYPE html>")
