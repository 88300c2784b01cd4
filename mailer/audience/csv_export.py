"""Export a list's readers as CSV (RFC 4180, UTF-8) with status, tags, language and consent."""

from __future__ import annotations

import csv
import errno
import os
import stat
from collections.abc import Iterator, Sequence
from itertools import groupby
from pathlib import Path
from typing import TextIO

from mailer.audience import members
from mailer.audience.cleaning import clean
from mailer.audience.formulas import inert
from mailer.audience.import_formats import ATTRIBUTE, EXPORTED
from mailer.config.private import open_private, replacing_mode
from mailer.db.database import Database
from mailer.errors import DiskFullError, FileInputError
from mailer.models import MailingList, Member, SubscriberStatus

# Import recognises these columns as the "mailer export" format, so an export imported elsewhere
# brings back the same readers.
COLUMNS = EXPORTED  # the columns before the attributes


def _cells(values: Sequence[str]) -> list[str]:
    """Cells as import stores them (no control characters), and no formula a spreadsheet runs."""
    return [inert(clean(value)) for value in values]


def _column(key: str) -> str:
    """An attribute's column: its name, or attribute:NAME where that would read as another."""
    clashes = key.lower() in COLUMNS or key.lower().startswith(ATTRIBUTE)
    return ATTRIBUTE + key if clashes else key


def _tags(database: Database, mailing_list: MailingList) -> Iterator[tuple[int, str]]:
    """(subscriber id, tags) of the list's tagged members, in subscriber order."""
    rows = database.stream(
        "SELECT t.subscriber_id, t.tag FROM tags t JOIN memberships m"
        " ON m.subscriber_id = t.subscriber_id AND m.list_id = ? ORDER BY t.subscriber_id",
        (mailing_list.id,),
    )
    # Grouped and sorted here, by code point, as either engine would otherwise spell it.
    for subscriber_id, tagged in groupby(rows, key=lambda row: int(row[0])):
        yield subscriber_id, "\n".join(sorted(str(row[1]) for row in tagged))


def _tag_cell(tags: str) -> str:
    """Tags as import reads them back: separated by commas, quoted where one holds a comma."""
    quoted = (f'"{t.replace(chr(34), chr(34) * 2)}"' if "," in t or '"' in t else t
              for t in tags.split("\n"))  # fmt: skip
    return ", ".join(quoted)


def export_csv(
    database: Database, mailing_list: MailingList, out: TextIO, statuses: Sequence[str] = ()
) -> int:
    """Write the list's members as CSV (email, name, status, language, tags, consent, one
    column per attribute); return the count. Erased readers have nothing left to export."""
    keys = members.attribute_keys(database, [mailing_list], statuses)
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(_cells([*COLUMNS, *map(_column, keys)]))
    tags = _tags(database, mailing_list)
    tagged = next(tags, None)
    count = 0
    for member in members.stream(database, mailing_list, statuses):
        while tagged is not None and tagged[0] < member.id:
            tagged = next(tags, None)
        if member.subscriber_status == SubscriberStatus.ERASED:
            continue
        cell = _tag_cell(tagged[1]) if tagged is not None and tagged[0] == member.id else ""
        writer.writerow(
            _cells([*_fixed(member, cell), *(member.attributes.get(k, "") for k in keys)])
        )
        count += 1
    return count


def _fixed(member: Member, tags: str) -> list[str]:
    active = member.subscriber_status == SubscriberStatus.ACTIVE
    status = member.status if active else member.subscriber_status
    return [member.email, member.name, status, member.lang, tags, member.source,
            member.joined_at, member.confirmed_at, member.ip]  # fmt: skip


def export_file(
    database: Database, mailing_list: MailingList, path: Path, statuses: Sequence[str] = ()
) -> int:
    """Export to ``path`` (mode 0600, or the tighter mode of the file it replaces) through a
    temporary file, so a failed export never leaves half a file. A link at ``path`` is followed:
    the file it names is the one replaced, and the link stays."""
    target = _target(path)
    partial = target.with_name(target.name + ".part")
    try:
        descriptor = open_private(partial, replacing_mode(target))
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            count = export_csv(database, mailing_list, handle, statuses)
        partial.replace(target)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise
    return count


# Links to a process's open files: /dev/stdout may name a regular file, which must not be
# replaced (the shell's redirection would go on writing to the file replaced).
DESCRIPTORS = ("/proc/", "/dev/fd/", "/dev/stdin", "/dev/stdout", "/dev/stderr")
WRITES_WHOLE = "--output writes a file whole; without --output, export writes to stdout"


def _target(path: Path) -> Path:
    """The file an export to ``path`` replaces: ``path``, or the file its link names (made
    there if the link names none yet). Anything but a regular file (a FIFO, a device, a
    descriptor such as /dev/stdout, a folder) is refused: it cannot be replaced whole and must
    not be replaced by a file, and writing into it leaves half an export where it stopped."""
    try:
        found = path.stat()
    except FileNotFoundError:
        found = None
    except OSError as error:
        hint = " (a looping link?)" if path.is_symlink() else ""
        raise FileInputError(path, f"cannot write: {error.strerror}{hint}") from None
    target = path
    for _ in range(40):  # the kernel's own limit; a loop failed stat above
        if str(target.absolute()).startswith(DESCRIPTORS):
            raise FileInputError(path, f"a process's open file, not a file: {WRITES_WHOLE}")
        if not target.is_symlink():
            break
        target = target.parent / os.readlink(target)  # relative to the link's folder
    if found is not None and not stat.S_ISREG(found.st_mode):
        kind = "a folder" if stat.S_ISDIR(found.st_mode) else "not a regular file"
        raise FileInputError(path, f"{kind}: {WRITES_WHOLE}")
    return target


def _write_error(path: Path, error: OSError) -> DiskFullError | FileInputError:
    if error.errno == errno.ENOSPC:
        return DiskFullError(f"export {path}", "run the same export again")
    return FileInputError(path, f"cannot write: {error.strerror}")
