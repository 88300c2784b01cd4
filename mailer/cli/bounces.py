"""CLI command that processes bounces, complaints and mailed unsubscribes: bounces process."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.bounces.apply import ProcessSummary, process
from mailer.bounces.sources import open_source
from mailer.cli.common import Typer, err, open_db, out, settings
from mailer.cli.output import plural
from mailer.tokens import Signer, load_secret

app = Typer(
    help="Process bounces, spam complaints and mailed unsubscribe requests.", no_args_is_help=True
)


@app.command(
    "process",
    epilog="Example: mailer bounces process ~/Maildir/.bounces, or"
    " imaps://bounces%40example.org@imap.example.org/INBOX",
)
def bounces_process(
    source: Annotated[
        str,
        typer.Argument(
            metavar="SOURCE",
            help="A Maildir folder, an mbox file, or imaps://USER@HOST[:PORT]/FOLDER"
            " (password from MAILER_BOUNCES_IMAP_PASSWORD).",
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would change; change and mark nothing.")
    ] = False,
) -> None:
    """Record bounces (hard: bounced; soft: counted), spam complaints (ARF reports: the reader
    is blocked on every list) and mailto unsubscribes from SOURCE.

    Processed messages are marked (Maildir: moved to cur/ as seen; IMAP: \\Seen and
    $MailerProcessed), never deleted; running it again changes nothing."""
    current = settings()
    with open_db(create=not dry_run) as database:  # a dry run creates nothing
        signer = Signer(load_secret(current.workspace))
        with open_source(source, imap_password=current.bounces.imap_password) as mailbox:
            summary = process(database, mailbox, signer, current.bounces, dry_run=dry_run)
    for note in summary.notes:
        err.print(f"{note.outcome}: {note.key}: {note.detail}", markup=False)
    prefix = "dry run, nothing changed: " if dry_run else ""
    out.print(prefix + summary_line(summary), markup=False)


def summary_line(summary: ProcessSummary) -> str:
    """The counts of a run; complaints only when there were some (most runs see none)."""
    counts = ", ".join(
        plural(n, kind) if kind == "complaint" else f"{n} {kind}"
        for kind, n in summary.counts.items()
        if n or kind != "complaint"
    )
    read, bounced = plural(summary.read, "message"), plural(summary.newly_bounced, "reader")
    return f"{read} read: {counts}; {bounced} now bounced"
