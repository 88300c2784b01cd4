"""Export a list's readers as CSV (RFC 4180, UTF-8): imported elsewhere, the same readers."""

from __future__ import annotations

import csv
import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mailer.audience import members
from mailer.audience.cleaning import clean
from mailer.audience.formulas import inert
from mailer.config.private import open_private, replacing_mode
from mailer.db.database import Database
from mailer.errors import DiskFullError, FileInputError
from mailer.models import MailingList


def _cells(values: Sequence[str]) -> list[str]:
    """Cells as import stores them (no control characters), and no formula a spreadsheet runs."""
    return [inert(clean(value)) for value in values]


def export_csv(
    database: Database, mailing_list: MailingList, out: TextIO, statuses: Sequence[str] = ()
) -> int:
    """Write the list's members as CSV (email, name, one column per attribute); return the count."""
    keys = members.attribute_keys(database, mailing_list, statuses)
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180
    writer.writerow(_cells(["email", "name", *keys]))
    count = 0
    for member in members.stream(database, mailing_list, statuses):
        values = [member.email, member.name, *(member.attributes.get(k, "") for k in keys)]
        writer.writerow(_cells(values))
        count += 1
    return count


def export_file(
    database: Database, mailing_list: MailingList, path: Path, statuses: Sequence[str] = ()
) -> int:
    """Export to ``path`` (mode 0600, or the tighter mode of the file it replaces) through a
    temporary file, so a failed export never leaves half a file."""
    partial = path.with_name(path.name + ".part")
    try:
        descriptor = open_private(partial, replacing_mode(path))
    except OSError as error:
        raise _write_error(path, error) from None
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as handle:
            count = export_csv(database, mailing_list, handle, statuses)
        partial.replace(path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _write_error(path, error) from None
        raise
    return count


def _write_error(path: Path, error: OSError) -> DiskFullError | FileInputError:
    if error.errno == errno.ENOSPC:
        return DiskFullError(f"export {path}", "run the same export again")
    return FileInputError(path, f"cannot write: {error.strerror}")
