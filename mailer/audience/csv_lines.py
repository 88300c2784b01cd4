"""A CSV file's lines, each read whole but never more than 64 KiB, and the cells of one line."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

MAX_LINE = 64 * 1024  # bytes in one line; a longer line is a bad row, a longer header an error
SHOWN = 60  # characters of a bad line shown with its problem
LONE_CR = re.compile(rb"(?<=\r)(?!\n)")


class Line(NamedTuple):
    """One physical line: its text (with its line break), or why it cannot be read."""

    number: int
    text: str = ""
    problem: str = ""
    too_long: bool = False


def lines(handle: BinaryIO) -> Iterator[Line]:
    """The file's lines, each read whole but never more than MAX_LINE bytes of it: a longer one
    is a problem, skipped to its end with bounded memory. A line that is not UTF-8 is a problem
    on its own line. Lines end at \n, \r\n or a lone \r, as with ``open(newline="")``."""
    number = 0
    while raw := handle.readline(MAX_LINE + 1):
        if number == 0:
            raw = raw.removeprefix(b"\xef\xbb\xbf")
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            number += 1
            yield Line(number, problem=f"line longer than {MAX_LINE // 1024} KiB", too_long=True)
            while raw and not raw.endswith(b"\n"):  # to the line's end, if there is one
                raw = handle.readline(MAX_LINE)
            continue
        for piece in LONE_CR.split(raw) if b"\r" in raw[:-2] else [raw]:
            number += 1
            try:
                yield Line(number, piece.decode("utf-8"))
            except UnicodeDecodeError as error:
                at = f"byte 0x{piece[error.start]:02x} at column {error.start + 1}"
                yield Line(number, problem=f"not UTF-8 ({at})")


class FieldError(Exception):
    """A line that is not a CSV row: why, and the start of the line."""

    def __init__(self, reason: str, shown: str) -> None:
        self.reason, self.shown = reason, shown
        super().__init__(reason)


def cells(line: Line, delimiter: str) -> list[str]:
    """The cells of one line. A quoted field ends on its own line: one that runs on is an
    unterminated quote (FieldError), and the next line is read as a row of its own."""
    try:
        return next(csv.reader([line.text], delimiter=delimiter, strict=True), [])
    except csv.Error as error:
        shown = line.text.rstrip("\r\n")
        shown = shown if len(shown) <= SHOWN else shown[: SHOWN - 3] + "..."
        if str(error) == "unexpected end of data":
            raise FieldError(
                "unterminated quote: a quoted field must end on the line it starts on", shown
            ) from None
        raise FieldError(f"bad quoting ({error})", shown) from None
