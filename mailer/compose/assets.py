"""A report's body rendered once per campaign with its images and attachments; their checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from markdown_it.token import Token

from mailer.compose import attachments, footnotes, images, lookalikes
from mailer.compose.attachments import Attached
from mailer.compose.images import Images
from mailer.compose.imaging import damaged_metadata
from mailer.compose.notices import Notice
from mailer.compose.personal import PLACEHOLDER, Spans
from mailer.compose.plaintext import PlainText, markdown, to_text
from mailer.compose.report import Report
from mailer.compose.report_files import ReportFiles
from mailer.config import Settings


@dataclass(frozen=True)
class AssetOptions:
    """How a campaign's images and attachments are made: [images] mode, where hosted
    images are written (None: nowhere, as for a preview) and [send] max_attachment_mb."""

    mode: str = "hosted"
    media: Path | None = None
    max_attachment_mb: float = 10.0
    files: ReportFiles = field(default_factory=ReportFiles)

    @classmethod
    def of(
        cls, settings: Settings, publish: bool = True, files: ReportFiles | None = None
    ) -> AssetOptions:
        media = settings.media_dir if publish else None
        mode, most = settings.images.mode, settings.send.max_attachment_mb
        return cls(mode, media, most, files or ReportFiles())


@dataclass(frozen=True)
class Body:
    """The body rendered once: HTML (images pointing where readers get them), the text part,
    the pictures, the attachments, and every warning."""

    html: str
    text: PlainText
    images: Images
    attachments: list[Attached]
    notices: list[Notice]


def prepare_body(
    report: Report, body: str, options: AssetOptions, base_url: str, domain: str
) -> Body:
    """Render ``body`` (the report's, its Jinja spans protected) with its images placed, and
    read its attachments; a missing or unreadable file is an error naming its line."""
    parser = markdown()
    env: dict[str, Any] = {}  # the footnotes found by parsing, for rendering
    tokens = parser.parse(body, env)
    placed = images.place(tokens, report, mode=options.mode, base_url=base_url, domain=domain,
                          media=options.media, files=options.files)  # fmt: skip
    files, heavy = attachments.attach(report, options.max_attachment_mb, options.files)
    html = parser.renderer.render(tokens, parser.options, env)
    text = to_text(tokens, parser, PLACEHOLDER, report.lang)
    looks = [*lookalikes.survey(tokens, report), *footnotes.survey(tokens, report)]
    return Body(html, text, placed, files, [*placed.notices, *looks, *heavy])


def inspect_report(
    report: Report, settings: Settings, *, strict: bool = False, with_attachments: bool = True
) -> list[Notice]:
    """Check the report's images (their headers only) and attachments (unless told not to):
    a missing file, or attachments over [send] max_attachment_mb, are errors; what readers
    would miss (and a paragraph that looks like the first item of the list after it) is a
    warning, returned, or (``strict``) the error raised."""
    tokens = _tokens(report)
    local, notices = images.survey(tokens, images.find(tokens, report), report)
    notices += _damaged(local, report)
    notices += lookalikes.survey(tokens, report)
    notices += footnotes.survey(tokens, report)
    if with_attachments:
        notices += attachments.survey(report, settings.send.max_attachment_mb)[1]
    if strict and notices:
        raise notices[0].error()
    return notices


def _damaged(local: list[tuple[images.Found, Path]], report: Report) -> list[Notice]:
    """A warning for each image whose metadata Pillow finds damaged (said once per file)."""
    notices, seen = [], set()
    for item, path in local:
        if path in seen:
            continue
        seen.add(path)
        if problem := damaged_metadata(path):
            why = (f"image {item.src} has damaged metadata ({problem}): it is dropped, as all"
                   " metadata is, but check that the picture stands the right way up")  # fmt: skip
            notices.append(Notice(report.path, item.line, why))
    return notices


def _tokens(report: Report) -> list[Token]:
    body = Spans().protect(report.body_source, str(report.path), report.body_line_offset + 1)
    return markdown().parse(body, {})
