"""CSV cells a spreadsheet shows as text: export escapes formulas, import takes the escape off."""

from __future__ import annotations

import re

# OWASP CSV injection: a cell that starts with one of = + - @ tab CR is a formula to a spreadsheet.
# It is written with a quote before it; so is a cell whose leading quotes precede one, so that
# reading the file back takes exactly one quote off and gets every value as it was.
ESCAPED = re.compile(r"'*[=+\-@\t\r]")


def inert(cell: str) -> str:
    """The cell as export writes it: a quote before a leading = + - @ tab or CR (after quotes)."""
    return "'" + cell if ESCAPED.match(cell) else cell


def live(cell: str) -> str:
    """The value of a cell that ``inert`` wrote: one quote taken off a cell that starts with
    quotes followed by = + - @ tab or CR; any other cell as it is."""
    return cell[1:] if cell.startswith("'") and ESCAPED.match(cell, 1) else cell
