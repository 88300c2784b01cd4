"""Reading the times editors type (`--since`, `--at`, `late_after`) as UTC instants and spans."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mailer.errors import InputError

AGO = re.compile(r"(\d{1,5})\s*([dhw])")
UNITS = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
         "w": timedelta(weeks=1)}  # fmt: skip
SPAN = re.compile(r"(\d{1,6})\s*([mhd])")
AT_EXAMPLE = '"2026-12-01 07:00" or 2026-12-01T07:00:30'
# How far ahead --at may be: a campaign is stored with its report and readers as they are now,
# and a year typed one too far (2027 for 2026, at the turn of the year) is always past this.
AHEAD = timedelta(days=366)


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
    except (OverflowError, ValueError):  # ValueError: year 0, a step past year 1 on the clock
        raise InputError(f"invalid {option} {text!r}: outside the years 1 to 9999") from None


def stamp(moment: datetime) -> str:
    """The form the database stores time stamps in (UTC ISO 8601 to the second)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA time zone this machine has (Europe/Paris, UTC)."""
    return _zone(name) is not None


def _zone(name: str) -> tzinfo | None:
    if not name.strip() or name != name.strip() or ".." in name or name.startswith("/"):
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def at(text: str, zone: str = "", *, now: datetime | None = None) -> datetime:
    """``--at``: a date and time in the future, to the minute or second, read in ``zone`` (an
    IANA name; empty: the machine's) unless it names its own offset; as an aware UTC datetime."""
    where = None
    if zone:
        where = _zone(zone)
        if where is None:
            raise InputError(f"invalid time zone {zone!r}: give an IANA name such as"
                             " Europe/Paris, America/New_York or UTC")  # fmt: skip
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"invalid --at {text!r}: expected a date and time such as"
                         f" {AT_EXAMPLE}") from None  # fmt: skip
    if len(text.strip()) <= 10:  # a bare date: which hour was meant is anyone's guess
        raise InputError(f"invalid --at {text!r}: give the time too, e.g. {AT_EXAMPLE}")
    try:
        if moment.tzinfo is None:
            moment = _on_the_clock(text, moment, where)
        found = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InputError(f"invalid --at {text!r}: outside the years 1 to 9999") from None
    current = now or datetime.now(UTC)
    if found <= current:
        shown = found.astimezone(where) if where else found.astimezone()
        raise InputError(f"--at {text!r} is in the past ({shown.isoformat(sep=' ')}):"
                         " give a time to come")  # fmt: skip
    if found > max(current, datetime.now(UTC)) + AHEAD:  # ``now`` (set back in tests): the past
        shown = found.astimezone(where) if where else found.astimezone()
        raise InputError(f"--at {text!r} is more than a year ahead ({shown.isoformat(sep=' ')}):"
                         " a typo? give a time within a year")  # fmt: skip
    return found


def _on_the_clock(text: str, wall: datetime, where: tzinfo | None) -> datetime:
    """``wall`` in ``where`` (None: the machine's zone); a time the clocks skip (spring) or
    show twice (autumn) is refused rather than guessed."""
    earlier = wall.replace(tzinfo=where, fold=0) if where else wall.replace(fold=0).astimezone()
    later = wall.replace(tzinfo=where, fold=1) if where else wall.replace(fold=1).astimezone()
    if earlier.utcoffset() == later.utcoffset():
        return earlier
    zone = where or earlier.tzinfo
    back = earlier.astimezone(UTC).astimezone(zone).replace(tzinfo=None)
    if back != wall:  # the clocks jump over it
        raise InputError(f"--at {text!r} does not exist in {zone}: the clocks go forward"
                         " then; give a time before or after")  # fmt: skip
    raise InputError(f"--at {text!r} happens twice in {zone} (the clocks go back): add its"
                     f" offset, {wall.isoformat()}{_offset(earlier)} or"
                     f" {wall.isoformat()}{_offset(later)}")  # fmt: skip


def _offset(moment: datetime) -> str:
    offset = moment.utcoffset() or timedelta()
    minutes = int(offset.total_seconds()) // 60
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def span(text: str) -> timedelta:
    """A length of time such as ``30m``, ``6h`` or ``2d`` (already checked as a setting)."""
    found = SPAN.fullmatch(text.strip().lower())
    if found is None:
        raise InputError(f"invalid duration {text!r}: expected e.g. 30m, 6h or 2d")
    return int(found.group(1)) * UNITS[found.group(2)]


def localised(moment: datetime, zone: str = "") -> datetime:
    """``moment`` on the wall clock of ``zone`` (an IANA name; empty or unknown: the machine's)."""
    where = _zone(zone) if zone else None
    try:
        return moment.astimezone(where) if where else moment.astimezone()
    except (OverflowError, ValueError):  # past the calendar's edge there: as it is (UTC)
        return moment
