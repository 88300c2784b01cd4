"""Reading the times editors type (`--since 2026-11-23`, `--since 7d`) as UTC instants."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from mailer.errors import InputError

AGO = re.compile(r"(\d{1,5})\s*([dhw])")
UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1)}


def since(text: str, option: str = "--since", *, now: datetime | None = None) -> datetime:
    """A date (midnight, local time), a date and time (local unless it names its offset), or an
    age such as ``7d``, ``12h`` or ``2w`` back from ``now``; as an aware UTC datetime."""
    current = now or datetime.now(UTC)
    ago = AGO.fullmatch(text.strip().lower())
    if ago:
        return current - int(ago.group(1)) * UNITS[ago.group(2)]
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"invalid {option} {text!r}: expected a date (2026-11-23), a date and time"
            " (2026-11-23T08:00) or an age (7d, 12h, 2w)"
        ) from None
    try:
        if moment.tzinfo is None:
            moment = moment.astimezone()  # the machine's zone, as the editor reads a wall clock
        return moment.astimezone(UTC)
    except OverflowError:
        raise InputError(f"invalid {option} {text!r}: outside the years 1 to 9999") from None


def stamp(moment: datetime) -> str:
    """The form the database stores time stamps in (UTC ISO 8601 to the second)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")
