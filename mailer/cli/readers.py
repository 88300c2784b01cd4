"""CLI commands about one reader everywhere: subscribers show, forget, block, unblock."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.audience import erasure, suppression
from mailer.audience.addresses import normalise
from mailer.audience.reader_data import ReaderData, as_record, reader_data
from mailer.audience.suppression import Suppressed, Suppression
from mailer.cli.common import confirm, err, open_db, out, settings
from mailer.cli.output import local, write_json
from mailer.cli.subscribers import app
from mailer.errors import NotFoundError
from mailer.models import Candidate
from mailer.tokens import load_secret

Emails = Annotated[list[str], typer.Argument(metavar="EMAIL...", help="One or more addresses.")]
CAUSES = {"blocklisted": "blocked by the editor", "complaint": "blocked after a complaint"}


def _say(line: str) -> None:
    out.print(line, markup=False)


@app.command("show", epilog="Example: mailer subscribers show ada@example.org --json")
def subscribers_show(
    email: str,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object with stable keys (art. 15, 20).")
    ] = False,
) -> None:
    """Show everything kept about one reader: lists with consent records, attributes, tags,
    every event and every delivery."""
    address = normalise(email)
    with open_db(create=False) as database:
        data = reader_data(database, address.email)
        if data is None:
            plan = erasure.plan(database, address.email, load_secret(settings().workspace))
            hint = f"erased on {local(plan.erased_at)}: only a keyed hash is kept"
            raise NotFoundError("subscriber", address.email, hint)
    if as_json:
        write_json(as_record(data))
        return
    _print_reader(data)


def _pending(data: ReaderData) -> list[str]:
    if data.pending_address is None:
        return []
    email, asked = data.pending_address
    return [f"new address: {email}, asked for {local(asked)}, waiting for its confirmation"]


def _print_reader(data: ReaderData) -> None:
    attributes = ", ".join(f"{k}={v}" for k, v in sorted(data.attributes.items()))
    lines = [
        f"subscriber {data.email}",
        f"name:       {data.name or '-'}",
        f"status:     {data.status}",
        f"language:   {data.lang or '-'}",
        f"tags:       {', '.join(data.tags) or '-'}",
        f"attributes: {attributes or '-'}",
        f"created:    {local(data.created_at)}; last change {local(data.updated_at)}",
        *_pending(data),
        "lists:" if data.lists else "lists:      none",
    ]
    for m in data.lists:
        c = m.consent
        lines.append(f"  {m.slug}  {m.status}  joined {local(c.joined_at)} via {c.source or '-'}"
                     f" from {c.ip or '-'}; confirmed {local(c.confirmed_at)}")  # fmt: skip
    lines.append("events:" if data.events else "events:     none")
    for e in data.events:
        campaign = f"campaign {e.campaign_id}" if e.campaign_id else ""
        where = " ".join(x for x in (e.list, campaign) if x)
        lines.append(f"  {local(e.at)}  {e.kind}  {where or '-'}  {e.detail}".rstrip())
    lines.append("deliveries:" if data.deliveries else "deliveries: none")
    for d in data.deliveries:
        lines.append(f"  campaign {d.campaign_id}  {d.status}  {local(d.sent_at)}  code"
                     f" {d.code or '-'}  {_n(d.attempts, 'attempt')}  {d.subject}")  # fmt: skip
    _say("\n".join(lines))


@app.command("forget", epilog="Example: mailer subscribers forget ada@example.org --yes")
def subscribers_forget(
    email: str,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Erase a reader everywhere (art. 17), keeping only a keyed hash of the address so that
    imports skip it; campaign counts stay right. They may subscribe again through the form."""
    address = normalise(email)
    current = settings()
    secret = load_secret(current.workspace)
    with open_db(create=False) as database:
        plan = erasure.plan(database, address.email, secret)
        if not plan.already:
            question = f"Erase {address.email} everywhere ({_counts(plan)})? It cannot be undone."
            confirm(question, yes, f"refusing to erase {address.email} without --yes")
        done = erasure.forget(database, address.email, secret, current.outbox_path)
    outbox = ""
    if done.outbox_messages:
        outbox = f"; removed {_n(done.outbox_messages, 'message')} to it from the outbox"
    if done.already:
        _say(f"{address.email} was already erased on {local(done.erased_at)}: only a keyed hash"
             f" of the address is kept{outbox}")  # fmt: skip
        return
    gone = "name, attributes, tags, consent IPs and the address are gone"
    _say(f"erased {address.email}: {gone} from {_counts(done)}{outbox};"
         " only a keyed hash is kept, so imports skip it")  # fmt: skip
    if not done.checkpointed:
        err.print("note: another process has the database open; its write-ahead log keeps the"
                  " old pages until it is checkpointed", markup=False)  # fmt: skip


def _n(count: int, one: str, many: str = "") -> str:
    return f"{count} {one if count == 1 else many or one + 's'}"


def _counts(erased: erasure.Erasure) -> str:
    deliveries = _n(erased.deliveries, "delivery", "deliveries")
    return f"{_n(erased.lists, 'list')}, {_n(erased.events, 'event')} and {deliveries}"


def _addresses(emails: list[str]) -> list[Candidate]:
    """Every address validated before anything is written; each once, in the order given."""
    found = [normalise(e) for e in emails]
    unique = {a.email: a for a in found}
    return [Candidate(a.email, a.smtputf8) for a in unique.values()]


@app.command("block", epilog="Example: mailer subscribers block spam@example.org old@example.org")
def subscribers_block(emails: Emails) -> None:
    """Block addresses on every list, known or never seen: no campaign, import or form reaches
    them until `mailer subscribers unblock` (or an explicit --resubscribe)."""
    secret = load_secret(settings().workspace)
    with open_db() as database:
        done = suppression.block(database, _addresses(emails), secret)
    for d in done:
        _say(_blocked(d))


def _blocked(d: Suppression) -> str:
    if d.outcome is Suppressed.BLOCKED_NEW:
        return f"blocked {d.email} (not known before): no list, import or form will add it"
    if d.outcome is Suppressed.ALREADY_BLOCKED:
        return f"{d.email} was already blocked"
    if d.outcome is Suppressed.ERASED:
        return f"{d.email} is an erased reader: nothing to block"
    if d.outcome is Suppressed.FORGOTTEN:
        return (f"{d.email} was erased at the reader's request and is already suppressed: its"
                " keyed hash keeps imports and additions out; the address is not stored"
                " again")  # fmt: skip
    kept = ", ".join(f"{slug} {status}" for slug, status in d.lists) or "none"
    return f"blocked {d.email} on every list (was {d.before}; memberships kept: {kept})"


@app.command("unblock", epilog="Example: mailer subscribers unblock ada@example.org")
def subscribers_unblock(emails: Emails) -> None:
    """Lift a block; the reader's memberships stay as they were, so they receive mail again on
    the lists where they are confirmed."""
    with open_db(create=False) as database:
        done = suppression.unblock(database, [c.email for c in _addresses(emails)])
    unknown = [d.email for d in done if d.outcome is Suppressed.UNKNOWN]
    for d in done:
        if d.outcome is not Suppressed.UNKNOWN:
            _say(_unblocked(d))
    if unknown:
        for email in unknown:
            err.print(f"error: no subscriber {email!r}", markup=False)
        raise typer.Exit(1)


def _unblocked(d: Suppression) -> str:
    if d.outcome is Suppressed.NOT_BLOCKED:
        if d.before == "bounced":
            return (f"{d.email} is not blocked but bounced: `mailer subscribers add LIST"
                    f" {d.email} --resubscribe` brings them back")  # fmt: skip
        return f"{d.email} is not blocked ({d.before})"
    cause = CAUSES.get(d.blocked_by, "blocked")
    if d.after == "bounced":
        return (f"unblocked {d.email} ({cause}), but their address bounced: still bounced, no"
                f" mail (`mailer subscribers add LIST {d.email} --resubscribe` brings them"
                " back)")  # fmt: skip
    receives = [slug for slug, status in d.lists if status == "confirmed"]
    where = f"receives mail again on {', '.join(receives)}" if receives else "on no list yet"
    others = [f"{slug} {status}" for slug, status in d.lists if status != "confirmed"]
    rest = f" (still {', '.join(others)})" if others else ""
    return f"unblocked {d.email} ({cause}): {where}{rest}"
