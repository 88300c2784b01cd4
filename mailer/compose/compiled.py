"""A report compiled once per campaign into shared parts; per-reader message bytes from them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from mailer.compose import mime
from mailer.compose.assets import AssetOptions, prepare_body
from mailer.compose.personal import (
    CONTROLS,
    Lit,
    Part,
    Spans,
    finalize,
    traceback_line,
)
from mailer.compose.report import Report
from mailer.compose.report_files import ReportFiles
from mailer.compose.styling import inline_css
from mailer.compose.templates import Loader, sandbox, template_dirs
from mailer.config import NewsletterSettings, Settings
from mailer.errors import FileInputError, MailerError
from mailer.models import PLACEHOLDER_READER, MailingList, Member, Reader

HTML_TEMPLATE = "newsletter.html.j2"
TEXT_TEMPLATE = "newsletter.txt.j2"


@dataclass(frozen=True)
class Links:
    """What templates see as ``links``: the reader's own addresses on the web side. A copy for
    the web archive has no reader: it has ``archive`` (the index) and its ``published`` date
    instead, and templates show a page footer rather than the reader's."""

    unsubscribe: str
    view_online: str = ""
    preferences: str = ""
    subscribe: str = ""  # the list's public form, for whoever was forwarded a copy
    archive: str = ""
    published: str = ""


def preview_links(base_url: str, token: str = "preview") -> Links:
    """Links for a preview or a test message; real tokens come from the caller."""
    base = base_url.rstrip("/")
    return Links(unsubscribe=f"{base}/u/{token}", preferences=f"{base}/p/{token}")


class _ProtectingLoader(Loader):
    """Loads templates with their personal spans replaced by tokens."""

    def __init__(self, dirs: Sequence[Path], spans: Spans) -> None:
        super().__init__([str(path) for path in dirs])
        self.spans = spans
        self.files: set[str] = set()

    def get_source(self, environment: jinja2.Environment, template: str) -> Any:
        source, filename, uptodate = super().get_source(environment, template)
        self.files.add(filename)
        return self.spans.protect(source, filename, every=False), filename, uptodate


class CompiledCampaign:
    """Everything shared by a campaign's messages, rendered once; ``message`` per reader."""

    def __init__(
        self,
        report: Report,
        newsletter: NewsletterSettings,
        mailing_list: MailingList,
        *,
        templates: Sequence[Path] | None = None,
        campaign_id: str = "preview",
        assets: AssetOptions | None = None,
    ) -> None:
        self.report, self.newsletter, self.list = report, newsletter, mailing_list
        dirs = list(templates) if templates is not None else template_dirs(None)
        _check_syntax(report, dirs)
        spans = Spans()
        path = str(report.path)
        body = spans.protect(report.body_source, path, report.body_line_offset + 1)
        sender_name, sender_addr = parseaddr(mime.clean(newsletter.sender))
        domain = mime.domain_of(sender_addr)
        made = prepare_body(report, body, assets or AssetOptions(), newsletter.base_url, domain)
        self.images, self.attachments = made.images, made.attachments
        self.warnings = made.notices  # for the caller to show: the core prints nothing
        text_body = made.text
        self.context: dict[str, Any] = {
            "report": {
                "subject": report.subject,
                "preheader": report.preheader,
                "author": report.author,
                "date": report.date,
                "lang": report.lang,
                "meta": report.meta,
                "html": Markup(made.html),
                "text": Lit(text_body.text),
            },
            "list": mailing_list,
            "newsletter": {
                "name": newsletter.name,
                "from": newsletter.sender,
                "sender": newsletter.sender,
                "sender_name": sender_name,
                "sender_address": sender_addr,
                "reply_to": newsletter.reply_to,
                "postal_address": newsletter.postal_address,
                "base_url": newsletter.base_url,
            },
        }
        loader = _ProtectingLoader(dirs, spans)
        html_env, text_env = sandbox(loader, True, finalize), sandbox(loader, False, finalize)
        html = _render_shared(html_env, HTML_TEMPLATE, self.context, loader)
        html = inline_css(html, HTML_TEMPLATE)
        text = _render_shared(text_env, TEXT_TEMPLATE, self.context, loader)
        self.html = Part(html, spans, html_env, [], "_html")
        self.text = Part(text, spans, text_env, text_body.specs, "_text")
        self.context.update(self.html.globals())
        self.context.update(self.text.globals())
        self.skeleton = mime.Skeleton(
            sender=newsletter.sender,
            subject=report.subject,
            list_name=mailing_list.name,
            list_slug=mailing_list.slug,
            reply_to=newsletter.reply_to,
            campaign=campaign_id,
            related=made.images.parts,
            attached=[attachment.part for attachment in made.attachments],
        )
        self.check([PLACEHOLDER_READER])

    def _context(self, reader: Reader, links: Links) -> dict[str, Any]:
        return {**self.context, "subscriber": clean_reader(reader), "links": links}

    def check(self, readers: Iterable[Reader | Member]) -> int:
        """Render every reader's personal parts once (no encoding); raise on the first error."""
        count, links = 0, preview_links(self.newsletter.base_url)
        for item in readers:
            reader = item if isinstance(item, Reader) else item.reader
            context = self._context(reader, links)
            who = "" if reader is PLACEHOLDER_READER else reader.email
            self.html.run(context, who)
            self.text.run(context, who)
            count += 1
        return count

    def parts(self, reader: Reader, links: Links) -> tuple[str, str]:
        """Return (html, text) for one reader, decoded: for previews and the reference build."""
        context = self._context(reader, links)
        return self.html.render(context, reader.email), self.text.render(context, reader.email)

    def message(
        self,
        reader: Reader,
        links: Links,
        *,
        message_id: str | None = None,
        date: bytes | None = None,
    ) -> bytes:
        """Return the complete message for one reader as CRLF bytes (previews and tests; the
        send pipeline keeps the chunks ``build`` gives)."""
        return b"".join(self.build(reader, links, message_id=message_id, date=date)[0])

    def build(
        self,
        reader: Reader,
        links: Links,
        *,
        message_id: str | None = None,
        date: bytes | None = None,
    ) -> tuple[list[bytes], str]:
        """Return (message chunks, Message-ID) for one reader: the send pipeline's Build. The
        chunks that every reader shares (the attachments, the report's lines) are the same
        objects each time, never copied per reader."""
        message, message_id, _ = self._build(reader, links, message_id, date, False)
        return message, message_id

    def build_relaxed(
        self,
        reader: Reader,
        links: Links,
        *,
        message_id: str | None = None,
        date: bytes | None = None,
    ) -> tuple[list[bytes], str, list[bytes] | None]:
        """Like ``build``, plus the DKIM relaxed canonical body as chunks, from shared chunks
        canonicalised once per campaign; None when it must be computed from the bytes."""
        return self._build(reader, links, message_id, date, True)

    def _build(
        self,
        reader: Reader,
        links: Links,
        message_id: str | None,
        date: bytes | None,
        relaxed: bool,
    ) -> tuple[list[bytes], str, list[bytes] | None]:
        context = self._context(reader, links)
        message_id = message_id or self.skeleton.message_id(reader.id)
        text, text_relaxed = self.text.chunks(context, reader.email, relaxed)
        html, html_relaxed = self.html.chunks(context, reader.email, relaxed)
        message = self.skeleton.assemble(
            to_name=reader.name,
            to_addr=reader.email,
            unsubscribe_url=links.unsubscribe,
            message_id=message_id,
            text=text,
            html=html,
            date=date,
        )
        canonical = None
        if text_relaxed is not None and html_relaxed is not None:
            canonical = self.skeleton.relaxed_body(text_relaxed, html_relaxed)
        return message, message_id, canonical


def _check_syntax(report: Report, dirs: Sequence[Path]) -> None:
    """Compile the body and every template as written, so syntax errors name file and line."""
    plain = sandbox(Loader([str(d) for d in dirs]), False)
    try:
        plain.parse(report.padded_body, str(report.path), str(report.path))
        for name in plain.list_templates(filter_func=lambda name: name.endswith(".j2")):
            plain.get_template(name)
    except jinja2.TemplateSyntaxError as error:
        where = error.filename or "template"
        raise FileInputError(where, error.message or "", error.lineno) from None
    if not any((d / HTML_TEMPLATE).is_file() for d in dirs):
        raise FileInputError(dirs[0] / HTML_TEMPLATE, "template not found")


def _render_shared(
    env: jinja2.Environment, name: str, context: Mapping[str, Any], loader: _ProtectingLoader
) -> str:
    try:
        return env.get_template(name).render(context)
    except jinja2.TemplateNotFound as error:
        raise FileInputError(name, f"template not found: {error.name}") from None
    except jinja2.TemplateSyntaxError as error:
        where = error.filename or name
        raise FileInputError(where, error.message or str(error), error.lineno) from None
    except MailerError:  # a template that cannot be read: it says which
        raise
    except Exception as error:  # an author's expression failed: name the template line
        line = traceback_line(error.__traceback__, loader.files)
        where = _last_file(error, loader.files) or name
        message = getattr(error, "message", None) or str(error)
        message = " ".join(message.split())
        raise FileInputError(where, message, line) from None


def _last_file(error: Exception, files: set[str]) -> str | None:
    tb, found = error.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename in files:
            found = tb.tb_frame.f_code.co_filename
        tb = tb.tb_next
    return found


def clean_reader(reader: Reader) -> Reader:
    """The reader with control characters (but tab and line feed) dropped from the name, the
    address and every attribute: no value a reader gives can hold a marker of the assembly."""
    name, email, attributes = _clean(reader.name), _clean(reader.email), _clean(reader.attributes)
    if name is reader.name and email is reader.email and attributes is reader.attributes:
        return reader
    return replace(reader, name=name, email=email, attributes=attributes)


def _clean(value: Any) -> Any:
    """``value`` with no control character in any text of it; the same object if it had none."""
    if isinstance(value, str):
        cleaned = value if value.isprintable() else value.translate(CONTROLS)
        return value if cleaned == value else cleaned
    if isinstance(value, Mapping):
        if all(type(k) is str is type(v) and (k + v).isprintable() for k, v in value.items()):
            return value  # the usual attributes: text, nothing to drop
        pairs = [(_clean(key), _clean(item)) for key, item in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(pairs, value.items(), strict=True)):
            return value
        return type(value)(pairs) if isinstance(value, dict) else dict(pairs)
    if isinstance(value, list | tuple):
        items = [_clean(item) for item in value]
        return (
            value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
        )
    return value


def compile_campaign(
    current: Settings,
    report: Report,
    mailing_list: MailingList,
    key: str,
    publish: bool = True,
    files: ReportFiles | None = None,
) -> CompiledCampaign:
    """The campaign compiled with the workspace's templates and its [images] and [send]
    settings; ``key`` goes into Message-IDs. With ``publish``, hosted images are written into
    the workspace's media folder, for `mailer serve` to answer with; ``files`` reads (and
    records) the images and attachments, or serves a stored campaign's."""
    dirs = template_dirs(current.templates_dir)
    assets = AssetOptions.of(current, publish, files)
    return CompiledCampaign(
        report, current.newsletter, mailing_list, templates=dirs, campaign_id=key, assets=assets
    )
