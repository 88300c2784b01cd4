"""Files attached to every message: found beside the report, typed, limited, encoded once."""

from __future__ import annotations

import mimetypes
import os
from dataclasses import dataclass
from pathlib import Path

from mailer.compose.notices import Notice
from mailer.compose.parts import leaf
from mailer.compose.report import Listed, Report
from mailer.compose.report_files import ReportFiles
from mailer.errors import FileInputError

MB = 1_000_000
HEAVY = 1 * MB  # above this in all, every reader downloads a lot with each message: a warning
COMPRESSED = {"gzip": "application/gzip", "bzip2": "application/x-bzip2",
              "xz": "application/x-xz", "br": "application/x-brotli"}  # fmt: skip


@dataclass(frozen=True)
class Attached:
    """One attachment: its name, type and size, and its whole MIME part, encoded."""

    name: str
    content_type: str
    size: int
    part: bytes


def survey(
    report: Report, max_mb: float, files: ReportFiles | None = None
) -> tuple[list[tuple[Listed, Path, int]], list[Notice]]:
    """Each attachment with its file and size (an error naming its line when there is none),
    without reading it, once however often it is listed; an error above ``max_mb`` in all, a
    warning above 1 MB or for a file listed twice."""
    reader, found, twice = files or ReportFiles(), [], []
    named: dict[str, Listed] = {}
    for listed in report.attachments:
        path = report.path.parent / listed.name
        first = named.setdefault(os.path.normpath(path), listed)
        if first is not listed:
            also = "" if first.name == listed.name else f" (first as {first.name})"
            twice.append(Notice(report.path, listed.line, f"attachment {listed.name} is listed"
                                f" twice{also}: it is attached once"))  # fmt: skip
            continue
        try:
            size = reader.size(path)
        except OSError as error:
            reason = "not found" if isinstance(error, FileNotFoundError) else error.strerror
            raise FileInputError(
                report.path, f"attachment {listed.name}: {reason}", listed.line
            ) from None
        if not reader.is_file(path):
            why = f"attachment {listed.name} is not a file"
            raise FileInputError(report.path, why, listed.line)
        found.append((listed, path, size))
    total = sum(size for _, _, size in found)
    if not found or total <= min(HEAVY, max_mb * MB):
        return found, twice
    sizes = ", ".join(f"{listed.name} {megabytes(size)}" for listed, _, size in found)
    line = found[0][0].line
    if total > max_mb * MB:
        raise FileInputError(report.path, f"attachments are {megabytes(total)} in all ({sizes}),"
                             f" over [send] max_attachment_mb = {max_mb:g}", line)  # fmt: skip
    heavy = (f"attachments are {megabytes(total)} in all ({sizes}), sent with every message:"
             " a link to the files may serve readers better")  # fmt: skip
    return found, [*twice, Notice(report.path, line, heavy)]


def attach(
    report: Report, max_mb: float, files: ReportFiles
) -> tuple[list[Attached], list[Notice]]:
    """Read, type and encode every attachment of ``report``; the warnings found."""
    found, notices = survey(report, max_mb, files)
    attached = []
    for listed, path, _ in found:
        try:
            data = files.data(path)
        except OSError as error:
            reason = error.strerror or str(error)
            raise FileInputError(
                report.path, f"attachment {listed.name}: {reason}", listed.line
            ) from None
        name = Path(listed.name).name
        kind = content_type(name, data)
        attached.append(Attached(name, kind, len(data), leaf(kind, data, name)))
    return attached, notices


def content_type(name: str, data: bytes) -> str:
    """The MIME type for a file called ``name``; application/octet-stream when unknown, or for
    text that is not UTF-8 (text parts must say their charset)."""
    kind, encoding = mimetypes.guess_type(name, strict=False)
    if encoding is not None:
        return COMPRESSED.get(encoding, "application/octet-stream")
    if kind is None or kind.startswith(("message/", "multipart/")):
        return "application/octet-stream"  # these may not be sent in base64
    if kind.startswith("text/"):
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return "application/octet-stream"
        return f'{kind}; charset="utf-8"'
    return kind


def megabytes(size: int) -> str:
    """``2.5 MB``, ``300 KB`` or ``28 B``."""
    if size >= MB // 10:
        return f"{size / MB:.1f} MB"
    return f"{size / 1000:.0f} KB" if size >= 1000 else f"{size} B"
