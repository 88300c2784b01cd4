"""Warnings for footnote references ([^name]) that no note defines: readers see them as written."""

from __future__ import annotations

import re
from collections.abc import Sequence

from markdown_it.token import Token

from mailer.compose.notices import Notice
from mailer.compose.report import Report

REFERENCE = re.compile(r"\[\^([^\]\s]+)\]")  # what the footnote plugin reads as a reference


def survey(tokens: Sequence[Token], report: Report) -> list[Notice]:
    """A warning for each ``[^name]`` left as text (no ``[^name]: ...`` note in the report),
    naming its line; one written ``\\[^name]`` is meant as text and passes."""
    lines = report.body_source.split("\n")
    notices = []
    for block in tokens:
        if block.type != "inline" or not block.children:
            continue
        line = (block.map[0] if block.map else 0) + 1  # in the body
        for child in block.children:
            if child.type in ("softbreak", "hardbreak"):
                line += 1
            elif child.type == "text":
                written = lines[line - 1] if line <= len(lines) else ""
                for found in REFERENCE.finditer(child.content):
                    if _escaped(found.group(), written):
                        continue
                    where = report.body_line_offset + line
                    why = (f"footnote {found.group()} has no note, so readers see it as written:"
                           f" add a line '{found.group()}: the note'")  # fmt: skip
                    notices.append(Notice(report.path, where, why))
    return notices


def _escaped(reference: str, line: str) -> bool:
    """Whether ``line`` writes ``reference`` only with a backslash before it."""
    at = [m.start() for m in re.finditer(re.escape(reference), line)]
    return bool(at) and all(start > 0 and line[start - 1] == "\\" for start in at)
