"""How wide text is in a monospace text part: East Asian wide letters take two columns each."""

from __future__ import annotations

import re
import unicodedata

# Marks that may not start a line (kinsoku: the ideographic comma and full stop, full-width
# punctuation, closing brackets, the prolonged sound mark): each stays with the letter before.
CLOSING = frozenset(
    "\u3001\u3002\uff0c\uff0e\uff01\uff1f\uff1a\uff1b\u300d\u300f\uff09\u3015\u3011\u3009"
    "\u300b\u2026\u2025\u30fc\u309d\u309e\u3005\u30fb,.!?:;)"
)
SPACES = re.compile(r"[ \t\n]+")  # what separates words in the text part
ATTACHED = frozenset("[\x05")  # a reference's bracket; plaintext's GLUE before its number
OPENING = frozenset("\u300c\u300e\uff08\u3014\u3010\u3008\u300a")  # opening brackets: not at an end


# Where wide letters live (Hangul Jamo, CJK and its punctuation, kana, Hangul syllables, CJK
# compatibility, full-width forms, the supplementary ideographs): text without any is measured
# by its length alone, which keeps the common case as quick as it was.
WIDE_BLOCKS = re.compile(
    "[\u1100-\u115f\u2e80-\ua4cf\uac00-\ud7a3\uf900-\ufaff\ufe30-\ufe4f\uff00-\uff60"
    "\uffe0-\uffe6\U00020000-\U0003fffd]"
)


def wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in "WF"


def has_wide(text: str) -> bool:
    return WIDE_BLOCKS.search(text) is not None


def width(text: str) -> int:
    """Columns ``text`` takes: two for a wide or full-width character (CJK), else one."""
    return sum(2 if wide(c) else 1 for c in text) if has_wide(text) else len(text)


def units(word: str) -> list[str]:
    """``word`` as the pieces a line may break between: the whole word, unless it holds wide
    letters (Chinese and Japanese put no spaces between words), which may break between them,
    with no closing mark at a line's start and no opening one at its end."""
    if not has_wide(word):
        return [word]
    pieces: list[str] = []
    for char in word:
        if not pieces:
            pieces.append(char)
            continue
        last = pieces[-1][-1]
        narrow = not wide(char) and not wide(last)  # a Latin word inside stays whole
        # A reference ("[3]", "[^1]"), glued to its label, stays with the letter before it.
        if char in CLOSING or char in ATTACHED or last in OPENING or narrow:
            pieces[-1] += char
        else:
            pieces.append(char)
    return pieces


def ljust(text: str, columns: int) -> str:
    return text + " " * max(0, columns - width(text))


def rjust(text: str, columns: int) -> str:
    return " " * max(0, columns - width(text)) + text


def center(text: str, columns: int) -> str:
    room = max(0, columns - width(text))
    return " " * (room // 2) + text + " " * (room - room // 2)


def fill_wide(segment: str, current: str, rest: str, limit: int, lines: list[str]) -> str:
    """plaintext.wrap for text with wide letters, measured in columns and broken between
    letters: full lines go to ``lines``, the last is returned."""
    used, filled = width(current), False
    for word in SPACES.split(segment):
        space = 1  # the pieces of one word join without a space
        for unit in units(word) if word else ():
            size = width(unit)
            if filled and used + space + size > limit:
                lines.append(current)
                current, used = rest + unit, width(rest) + size
            else:
                current += (" " * space if filled else "") + unit
                used += (space if filled else 0) + size
            filled, space = True, 0
    return current if filled else current.rstrip()
