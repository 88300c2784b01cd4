"""A report's own images: found with their lines, fitted, then hosted at /media/ or sent inline."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

from markdown_it.token import Token

from mailer.compose import html_images
from mailer.compose.html_images import Tag
from mailer.compose.imaging import ImageError, Picture, fit
from mailer.compose.notices import Notice
from mailer.compose.parts import leaf
from mailer.compose.personal import PLACEHOLDER
from mailer.compose.report import Report
from mailer.compose.report_files import ReportFiles
from mailer.errors import FileInputError

MODES = ("hosted", "inline")
MEDIA_NAME = re.compile(r"[0-9a-f]{32}\.(?:png|jpg|gif)")  # what Picture.name makes
SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
FILE_URL = re.compile(r"!\[[^\]\n]*\]\(\s*<?(file:[^()<>\s]*)", re.IGNORECASE)  # ![a](file:///x)
SPACED = re.compile(r"!\[([^\]\n]*)\]\(([^()<>\s]+ [^()<>]*?)\)")  # ![a](my pics/x.png)
MAX_FILE = 50 * 1024 * 1024  # bytes of one image file
STYLE = "max-width: 100%; height: auto;"  # narrower screens shrink it, in proportion


@dataclass(eq=False)
class Found:
    """An image the Markdown shows: its token, its source and alt text, its line in the file;
    ``tag`` when it is an <img> of raw HTML (the token's content holds it)."""

    token: Token
    src: str
    alt: str
    line: int
    tag: Tag | None = None


@dataclass(frozen=True)
class Placed:
    """One picture of the campaign and how messages refer to it."""

    picture: Picture
    filename: str  # the file's own name, with the extension of what is sent
    reference: str  # what the HTML's src says: the hosted URL, or cid:...
    url: str  # where `mailer serve` answers with it (the archive uses it in either mode)
    content_id: str = ""  # inline mode


@dataclass
class Images:
    """A campaign's pictures (each once, however often it is shown), its inline parts and
    the warnings found."""

    placed: list[Placed] = field(default_factory=list)
    parts: list[bytes] = field(default_factory=list)
    notices: list[Notice] = field(default_factory=list)


def find(tokens: Sequence[Token], report: Report) -> list[Found]:
    """Every image in the body's tokens, Markdown's and raw HTML's <img>, with the line of the
    report file it is written on."""
    found = []
    for block in tokens:
        line = report.body_line_offset + (block.map[0] if block.map else 0) + 1
        if block.type == "html_block":
            found += _raw(block, line)
        if block.type != "inline" or not block.children:
            continue
        for child in block.children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "image":
                src = str(child.attrs.get("src", ""))
                found.append(Found(child, src, " ".join(child.content.split()), line))
            elif child.type == "html_inline":
                found += _raw(child, line)
                line += child.content.count("\n")
    return found


def _raw(token: Token, line: int) -> list[Found]:
    """The <img> tags of a raw HTML token, its first line being ``line``."""
    return [Found(token, tag.src, tag.alt, line + token.content.count("\n", 0, tag.start), tag)
            for tag in html_images.tags(token.content)]  # fmt: skip


def local_path(src: str) -> str | None:
    """The file path ``src`` names; None for a URL (https:, cid:, data:, //host) or a value
    written with Jinja (rendered later, per reader)."""
    if not src or PLACEHOLDER.search(src) or src.startswith(("//", "#")) or SCHEME.match(src):
        return None
    return unquote(urlsplit(src).path) or None


def survey(
    tokens: Sequence[Token], found: list[Found], report: Report, files: ReportFiles | None = None
) -> tuple[list[tuple[Found, Path]], list[Notice]]:
    """Each local image with its file (an error naming the line if there is none, or if it is
    a file: URL), and the warnings: no alt text, plain http, a path with a space."""
    files = files or ReportFiles()
    local, notices = [], []
    for item in found:
        if not item.alt:
            how = 'alt="what it shows"' if item.tag else "![what it shows](...)"
            notices.append(Notice(report.path, item.line, f"image {item.src} has no alt text:"
                                  " readers who do not load images, and screen readers, get"
                                  f" nothing (write {how})"))  # fmt: skip
        if item.src.lower().startswith("file:"):
            _refuse_file_url(item.src, report, item.line)
        if item.src.lower().startswith("http://"):
            notices.append(Notice(report.path, item.line, f"image {item.src} loads over plain"
                                  " http, which many mail clients block: use https"))  # fmt: skip
        written = local_path(item.src)
        if written is None:
            continue
        path = report.path.parent / written
        if not files.is_file(path):
            why = "is not a file" if files.exists(path) else "not found"
            raise FileInputError(report.path, f"image {item.src} {why} ({path})", item.line)
        local.append((item, path))
    for token in tokens:
        line = report.body_line_offset + (token.map[0] if token.map else 0) + 1
        for child in token.children or []:
            line += child.type in ("softbreak", "hardbreak")
            if child.type != "text":
                continue
            if url := FILE_URL.search(child.content):  # Markdown refuses to link it
                _refuse_file_url(url[1], report, line)
            if spaced := SPACED.search(child.content):  # Markdown reads it as text
                why = (f"![{spaced[1]}]({spaced[2]}) is shown as text: a path with a space is"
                       f" written <{spaced[2]}> or with %20")  # fmt: skip
                notices.append(Notice(report.path, line, why))
    return local, notices


def _refuse_file_url(src: str, report: Report, line: int) -> None:
    why = (f"image {src}: a message cannot show a file of this computer; write its path"
           " relative to the report, such as images/chart.png")  # fmt: skip
    raise FileInputError(report.path, why, line)


def place(
    tokens: Sequence[Token],
    report: Report,
    *,
    mode: str,
    base_url: str,
    domain: str,
    media: Path | None,
    files: ReportFiles,
) -> Images:
    """Find, check and fit every local image, write it into ``media`` (if given) and point
    its token at the hosted URL or, inline, at its cid: part; other images stay as written."""
    local, notices = survey(tokens, find(tokens, report), report, files)
    images = Images(notices=notices)
    done: dict[Path, Placed] = {}
    same: dict[str, Placed] = {}  # by content: two files with the same bytes are one part
    raw: dict[int, tuple[Token, list[tuple[Tag, Placed]]]] = {}  # by id of the HTML token
    for item, path in local:
        placed = done.get(path.resolve())
        if placed is None:
            picture = _picture(item, path, report, files)
            placed = same.get(picture.name)
        if placed is None:
            url = f"{base_url.rstrip('/')}/media/{picture.name}"
            filename = f"{path.stem}.{picture.ext}"
            if mode == "inline":
                content_id = f"{picture.name}@{domain}"
                placed = Placed(picture, filename, f"cid:{content_id}", url, content_id)
                images.parts.append(leaf(picture.content_type, picture.data, filename,
                                         disposition="inline", content_id=content_id))  # fmt: skip
            else:
                placed = Placed(picture, filename, url, url)
            if media is not None:
                publish(media, picture)
            same[picture.name] = placed
            images.placed.append(placed)
        done[path.resolve()] = placed
        if item.tag is not None:
            raw.setdefault(id(item.token), (item.token, []))[1].append((item.tag, placed))
            continue
        width, height = placed.picture.shown
        for name, value in (("src", placed.reference), ("width", str(width)),
                            ("height", str(height)), ("style", STYLE)):  # fmt: skip
            item.token.attrSet(name, value)
    for token, tags in raw.values():
        token.content = _rewritten(token.content, tags)
    return images


def _rewritten(content: str, tags: list[tuple[Tag, Placed]]) -> str:
    """Raw HTML with each local <img> pointing where readers get it, shown at most 600 px
    wide (unless the tag gives its own width or height)."""
    for tag, placed in sorted(tags, key=lambda pair: pair[0].start, reverse=True):
        width, height = placed.picture.shown
        sized = {"width", "height"} & set(tag.attributes)
        added = {"style": STYLE} if sized else {"width": str(width), "height": str(height),
                                                 "style": STYLE}  # fmt: skip
        new = html_images.rewrite(tag, placed.reference, added)
        content = content[: tag.start] + new + content[tag.end :]
    return content


def _picture(item: Found, path: Path, report: Report, files: ReportFiles) -> Picture:
    try:
        if files.size(path) > MAX_FILE:
            raise ImageError(f"is larger than {MAX_FILE // 1024 // 1024} MB")
        return fit(files.data(path))
    except ImageError as error:
        raise FileInputError(report.path, f"image {item.src} {error}", item.line) from None
    except OSError as error:
        reason = error.strerror or str(error)
        raise FileInputError(report.path, f"image {item.src}: {reason}", item.line) from None


def publish(media: Path, picture: Picture) -> None:
    """Write ``picture`` into ``media`` under its content-hash name, whole or not at all."""
    target = media / picture.name
    try:
        if target.is_file() and target.stat().st_size == len(picture.data):
            return  # the same name is the same content
        media.mkdir(parents=True, exist_ok=True)
        partial = media / f".{picture.name}.{os.getpid()}.part"
        partial.write_bytes(picture.data)
        os.replace(partial, target)
    except OSError as error:
        reason = error.strerror or str(error)
        raise FileInputError(media, f"cannot write {picture.name}: {reason}") from None
