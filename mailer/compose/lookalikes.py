"""A paragraph just before a list that reads like the list's first item, kept out of it by a
quotation mark, bracket or emphasis in front: ``"1. We want fair pay.`` then ``2. ...`` is,
by CommonMark, a paragraph and a list that starts at 2. A warning, with the paragraph's line."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from markdown_it.token import Token

from mailer.compose.notices import Notice
from mailer.compose.report import Report

NUMBERED = re.compile(r"(\d{1,9})([.)])(?:\s|$)")  # what starts an ordered item: 1. or 1)
BULLETED = re.compile(r"([-*+])(?:\s|$)")
# In front of an item's marker: quotation marks of every script and brackets (Unicode's
# initial, final and opening punctuation: “ „ « » 「 『 ( [ and the single ones), the quotes
# that are other punctuation (" ' and their full-width forms), emphasis (* _ ~) and spaces.
QUOTES = "\"'\uff02\uff07*_~"
OPENING = ("Pi", "Pf", "Ps")
PARAGRAPH = ("paragraph_open", "inline", "paragraph_close")


def survey(tokens: Sequence[Token], report: Report) -> list[Notice]:
    """A warning for each paragraph that ends just before a list (the next token: a sibling,
    at the top, in a blockquote or in a list item) and looks like that list's first item."""
    notices = []
    for at in range(len(tokens) - 3):
        opening, inline, closing, following = tokens[at : at + 4]
        if (opening.type, inline.type, closing.type) != PARAGRAPH:
            continue
        found = _looks_like(inline.content, following)
        if found is not None:
            line = report.body_line_offset + (opening.map[0] if opening.map else 0) + 1
            notices.append(Notice(report.path, line, found))
    return notices


def _looks_like(text: str, following: Token) -> str | None:
    """What to say when ``text``, past its leading marks, starts as the first item of the list
    opened by ``following`` would; None when it does not (or ``following`` opens no list)."""
    if following.type == "ordered_list_open":
        start = int(following.attrs.get("start", 1))
        found = _after_marks(text, NUMBERED)
        if start < 2 or found is None:
            return None
        marks, (number, delimiter) = found[0], found[1].groups()
        if int(number) != start - 1 or delimiter != following.markup:  # 1) is not 2.'s
            return None
        item, escaped = f"{number}{delimiter}", f"{number}\\{delimiter}"
        which = f"the list starts at {start}"
    elif following.type == "bullet_list_open":
        found = _after_marks(text, BULLETED)
        if found is None or found[1][1] != following.markup:
            return None
        marks, item, escaped = found[0], f"{following.markup} ", f"\\{following.markup}"
        which = f'a "{following.markup}" list'
    else:
        return None
    return (f"this paragraph looks like the first item of the list after it ({which});"
            f' remove {marks!r} before "{item}" to make it that item, or escape it as'
            f' "{escaped}" if the paragraph is meant')  # fmt: skip


def _after_marks(text: str, marker: re.Pattern[str]) -> tuple[str, re.Match[str]] | None:
    """The leading marks of ``text`` and the item marker just after them (CommonMark makes
    an item of a paragraph that starts with the marker itself)."""
    for index, char in enumerate(text):
        if found := marker.match(text, index):
            return text[:index], found
        if not (char in QUOTES or char.isspace() or unicodedata.category(char) in OPENING):
            return None
    return None
