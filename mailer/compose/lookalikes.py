"""Warnings for lines that read like list items but are kept out of a list by marks in front."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

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
# What closes a mark in front: English “…”, German „…“, French «…», Danish »…«, Swedish ”…”,
# Japanese 「…」, brackets. Emphasis, and a mark not here, close with nothing looked for.
# fmt: off
CLOSERS = {
    '"': '"”', "'": "'\u2019", "“": "”", "”": "”", "„": "“”", "\u2018": "\u2019",
    "\u2019": "\u2019", "\u201a": "\u2018\u2019", "«": "»", "»": "«»", "\u2039": "\u203a",
    "\u203a": "\u2039\u203a", "「": "」", "『": "』", "\uff02": "\uff02", "\uff07": "\uff07",
    "(": ")", "[": "]", "{": "}", "\uff08": "\uff09",
}
# fmt: on
HARD_BREAK = re.compile(r"(\\| {2,})$")  # a line that ends so is not run into the next
SHOWN = 4  # numbers named in full in a warning; more are shortened to "1., 2., ..., 9."


@dataclass(frozen=True)
class Item:
    """A line of a paragraph that starts, past its leading marks, with an item's marker; and
    the marks' closing ones when they end the paragraph (or that line): ``"1. ..."``."""

    index: int  # the line, counted from the paragraph's first (0)
    marks: str
    marker: re.Match[str]  # on the line
    closing: str = ""
    closed_at: str = "paragraph"  # or "line": where ``closing`` is

    @property
    def shown(self) -> str:
        """The marker as written: ``1.`` or ``-``."""
        return self.marker.group().rstrip()

    @property
    def interrupts(self) -> bool:
        """Whether, without the marks, the line would start a list where it is: after other
        lines of the paragraph only an item that is not empty, and numbered 1 if numbered."""
        marker, text = self.marker.group(1), self.marker.string[self.marker.end() :]
        first = not marker.isdigit() or int(marker) == 1
        return self.index == 0 or (first and text.strip() != "")

    def remedy(self) -> str:
        """What else to change when removing the marks: the closing ones, a blank line."""
        said = f" and {self.closing!r} at the end of the {self.closed_at}" if self.closing else ""
        if self.interrupts:
            return said
        return f"{said}{',' if said else ''} and put a blank line before that line"


def survey(tokens: Sequence[Token], report: Report) -> list[Notice]:
    """A warning for each paragraph that runs lines numbered like a list together, or that
    ends just before a list (the next token: a sibling, at the top, in a blockquote or in a
    list item) and looks like that list's first item; at most one for a paragraph."""
    notices = []
    for at in range(len(tokens) - 2):
        opening, inline, closing = tokens[at : at + 3]
        if (opening.type, inline.type, closing.type) != PARAGRAPH:
            continue
        lines = inline.content.split("\n")
        following = tokens[at + 3] if at + 3 < len(tokens) else None
        found = _run_together(lines) or _looks_like(lines, following)
        if found is not None:
            index, message = found
            first = opening.map[0] if opening.map else 0
            notices.append(
                Notice(report.path, report.body_line_offset + first + index + 1, message)
            )
    return notices


# A quoted list written without blank lines, ``"1. a`` / ``2. b`` / ``3. c"``, is one paragraph:
# an ordered list that does not start at 1 cannot interrupt a paragraph (CommonMark).
def _run_together(lines: list[str]) -> tuple[int, str] | None:
    """What to say when a line with marks in front starts with a number N and later lines of
    the same paragraph with N+1, N+2, ... and the same delimiter, run into one another."""
    for index in range(len(lines) - 1):
        item = _item(lines, index, NUMBERED)
        if item is None:
            continue
        number, delimiter = item.marker.groups()
        numbers, joined = [int(number)], False
        for before, line in zip(lines[index:], lines[index + 1 :], strict=False):
            found = NUMBERED.match(line.lstrip())
            if found is None:
                continue
            if (int(found[1]), found[2]) != (numbers[-1] + 1, delimiter):
                break
            numbers.append(numbers[-1] + 1)
            joined = joined or HARD_BREAK.search(before) is None
        if len(numbers) > 1 and joined:
            named = [f"{n}{delimiter}" for n in numbers]
            if len(named) > SHOWN:
                named = [*named[:2], "...", named[-1]]
            return index, (
                f"these lines look like a numbered list ({', '.join(named)}) but are one"
                f" paragraph, because of {item.marks!r} before \"{item.shown}\"; remove it"
                f"{item.remedy()} to make them a list, or end each line before a number with"
                ' "\\" to keep the paragraph with its lines apart'
            )  # fmt: skip
    return None


# By CommonMark, ``"1. We want fair pay.`` then ``2. ...`` is a paragraph and a list that
# starts at 2.
def _looks_like(lines: list[str], following: Token | None) -> tuple[int, str] | None:
    """What to say when the paragraph's last line, past its leading marks, starts as the
    first item of the list opened by ``following`` would (or its first line does: an item
    wrapped over lines); None when neither does, or ``following`` opens no list."""
    if following is None:
        return None
    for index in dict.fromkeys((len(lines) - 1, 0)):  # the last line, then the first
        if following.type == "ordered_list_open":
            start = int(following.attrs.get("start", 1))
            item = _item(lines, index, NUMBERED)
            if start < 2 or item is None:
                continue
            number, delimiter = item.marker.groups()
            if int(number) != start - 1 or delimiter != following.markup:  # 1) is not 2.'s
                continue
            shown, escaped = f"{number}{delimiter}", f"{number}\\{delimiter}"
            which = f"the list starts at {start}"
        elif following.type == "bullet_list_open":
            item = _item(lines, index, BULLETED)
            if item is None or item.marker[1] != following.markup:
                continue
            shown, escaped = f"{following.markup} ", f"\\{following.markup}"
            which = f'a "{following.markup}" list'
        else:
            return None
        return index, (
            f"this paragraph looks like the first item of the list after it ({which}); remove"
            f" {item.marks!r} before \"{shown}\"{item.remedy()} to make it that item, or escape"
            f' it as "{escaped}" if the paragraph is meant'
        )  # fmt: skip
    return None


def _item(lines: list[str], index: int, marker: re.Pattern[str]) -> Item | None:
    """Line ``index`` as an item kept out of a list by marks in front; None when it has no
    marks, no marker after them, or the marker sits inside a quoted phrase (or brackets)
    that ends before the line does: ``"1. Intro," he began.``."""
    line = lines[index]
    found = _after_marks(line, marker)
    if found is None or not found[0].strip():
        return None
    marks, match = found
    rest = "\n".join(lines[index:])  # from the marker to the paragraph's end
    ends: list[int | None] = []
    for mark in (mark for mark in marks if mark in CLOSERS):
        at = _closed(rest, match.end(), mark)
        if at is not None and at < len(line) and _words(rest[at + 1 : len(line)]):
            return None  # prose: the quotation is closed mid-line
        ends.append(at)
    if not ends or None in ends:
        return Item(index, marks, match)
    first = min(at for at in ends if at is not None)
    if not _words(rest[first + 1 :]):
        return Item(index, marks, match, _closing(rest[first:]), "paragraph")
    if first < len(line) and not _words(rest[first + 1 : len(line)]):
        return Item(index, marks, match, _closing(rest[first : len(line)]), "line")
    return Item(index, marks, match)


def _after_marks(text: str, marker: re.Pattern[str]) -> tuple[str, re.Match[str]] | None:
    """The leading marks of ``text`` and the item marker just after them (CommonMark makes
    an item of a paragraph that starts with the marker itself)."""
    for index, char in enumerate(text):
        if found := marker.match(text, index):
            return text[:index], found
        if not (char in QUOTES or char.isspace() or unicodedata.category(char) in OPENING):
            return None
    return None


def _closed(text: str, start: int, mark: str) -> int | None:
    """Where in ``text`` from ``start`` the quotation mark or bracket ``mark`` is closed,
    past the ones nested in it; None when it is not. A closing quote right before a letter
    is an apostrophe (don't); " and ' open when after a space, before a word."""
    closers, depth = CLOSERS[mark], 0
    for at in range(start, len(text)):
        char = text[at]
        if char != mark and char not in closers:
            continue
        before = text[at - 1] if at else " "
        after = text[at + 1] if at + 1 < len(text) else " "
        opens = before.isspace() or unicodedata.category(before) in ("Ps", "Pi")
        if char == mark and (char not in closers or (opens and not after.isspace())):
            depth += 1
        elif after.isalnum():
            continue
        elif depth:
            depth -= 1
        else:
            return at
    return None


def _words(text: str) -> bool:
    """Whether ``text`` holds more than punctuation and spaces."""
    return any(char.isalnum() for char in text)


def _closing(tail: str) -> str:
    """The closing marks in ``tail`` (from the first of them to the end): its quotation
    marks, brackets and emphasis, not its full stop."""
    kept = (c for c in tail if c in QUOTES or unicodedata.category(c) in ("Pe", "Pf", "Pi"))
    return "".join(kept)
