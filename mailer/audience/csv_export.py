"""Export a list's readers as CSV (RFC 4180, UTF-8): imported elsewhere, the same readers."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mailer.audience import members
from mailer.db.database import Database
from mailer.errors import FileInputError
from mailer.models import MailingList


def export_csv(
    database: Database, mailing_list: MailingList, out: TextIO, statuses: Sequence[str] = ()
) -> int:
    """Write the list's members as CSV (email, name, one column per attribute); return the count."""
    keys = members.attribute_keys(database, mailing_list, statuses)
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180; quotes any \r or \n
    writer.writerow(["email", "name", *keys])
    count = 0
    for member in members.stream(database, mailing_list, statuses):
        writer.writerow([member.email, member.name, *(member.attributes.get(k, "") for k in keys)])
        count += 1
    return count


def export_file(
    database: Database, mailing_list: MailingList, path: Path, statuses: Sequence[str] = ()
) -> int:
    """Export to ``path`` through a temporary file, so a failed export never leaves half a file."""
    partial = path.with_name(path.name + ".part")
    try:
        with partial.open("w", encoding="utf-8", newline="") as handle:
            count = export_csv(database, mailing_list, handle, statuses)
        partial.replace(path)
    except OSError as error:
        if partial.is_file():
            partial.unlink()
        raise FileInputError(path, f"cannot write: {error.strerror}") from None
    return count
