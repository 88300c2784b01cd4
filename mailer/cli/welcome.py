"""What the CLI does and says about a list's welcome mail: set it, clear it, send it at once."""

from __future__ import annotations

from pathlib import Path

from mailer.cli.common import open_db, out, settings
from mailer.cli.progress import Reporter, run_stoppable
from mailer.cli.send import summarise, warn_editions
from mailer.compose.editions import read_editions
from mailer.compose.report import load_report
from mailer.errors import InputError
from mailer.models import MailingList, Member, MembershipStatus
from mailer.send import welcome
from mailer.send.sessions import Session


def set_welcome(slug: str, path: Path) -> None:
    """`lists set L --welcome FILE`: checked as `send` checks it; an error stores nothing."""
    current = settings()
    report = load_report(path)  # a bad report is one line before anything is stored
    warn_editions(read_editions(report), current)
    with open_db() as database:
        done = welcome.set_welcome(Session(current, database), slug, report)
    assert done.now is not None
    replaced = "" if done.before is None else f"; it replaces campaign {done.before}"
    out.print(f"list {slug}: welcome mail is campaign {done.now.id}, “{done.now.subject}”;"
              f" each reader who joins gets it once{replaced}", markup=False)  # fmt: skip


def clear_welcome(slug: str) -> None:
    """`lists set L --no-welcome`."""
    with open_db() as database:
        done = welcome.clear_welcome(database, slug)
    if done.before is None:
        out.print(f"list {slug}: no welcome mail (it had none)", markup=False)
        return
    out.print(f"list {slug}: no welcome mail; campaign {done.before} stays in `mailer campaigns"
              " ls`, new readers no longer get it", markup=False)  # fmt: skip


def require_welcome(mailing_list: MailingList, has_one: bool) -> None:
    if not has_one:
        raise InputError(f"list {mailing_list.slug} has no welcome mail: set one with"
                         f" mailer lists set {mailing_list.slug} --welcome FILE")  # fmt: skip


def send_now(campaign_id: int, email: str) -> None:
    """Deliver the welcome just queued (with any other reader's waiting in it); when another
    process is sending that campaign, it stays queued for it or `mailer serve`."""
    with open_db() as database:
        reporter = Reporter()
        session = Session(settings(), database, on_progress=reporter)
        try:
            outcome = run_stoppable(welcome.deliver_welcome(session, campaign_id), session.control)
        finally:
            reporter.close()
    if outcome is None:
        out.print(f"welcome to {email} queued: campaign {campaign_id} is being sent by"
                  " another mailer process, which sends it, or `mailer serve` will",
                  markup=False)  # fmt: skip
        return
    out.print(f"welcome mail (campaign {campaign_id}) to {email}:", markup=False)
    summarise(outcome)


def said_welcome(queued: list[int], email: str, member: Member | None) -> None:
    """After `subscribers add --welcome`: send the welcome the join queued, or say why none."""
    if queued:
        send_now(queued[0], email)
    elif member is not None and member.status == MembershipStatus.UNCONFIRMED:
        out.print(f"{email} gets the welcome mail when they confirm", markup=False)
    else:
        out.print(f"no welcome mail: {email} did not join now (a reader gets it once, on"
                  " joining)", markup=False)  # fmt: skip
