"""CLI commands for deliverability: DKIM keys, and processing bounces and mailto unsubscribes."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from mailer.cli import app, out, settings
from mailer.dkim_sign import dns_record, generate_key, private_pem
from mailer.errors import FileInputError, InputError

dkim_app = typer.Typer(help="DKIM signing keys.", no_args_is_help=True)
app.add_typer(dkim_app, name="dkim")


@dkim_app.command("keygen", epilog="Example: mailer dkim keygen --domain example.org")
def dkim_keygen(
    key_type: Annotated[str, typer.Option("--type", help="rsa (2048 bits) or ed25519.")] = "rsa",
    domain: Annotated[
        str | None, typer.Option(help="Signing domain (default: [dkim] domain).")
    ] = None,
    selector: Annotated[
        str | None, typer.Option(help="Selector (default: [dkim] selector).")
    ] = None,
    force: Annotated[bool, typer.Option(help="Replace an existing key file.")] = False,
) -> None:
    """Write a DKIM private key to [dkim] key_file and print the DNS TXT record to publish."""
    current = settings()
    domain = domain or current.dkim.domain
    selector = selector or current.dkim.selector
    if not domain:
        raise InputError("no signing domain: give --domain or set [dkim] domain")
    path = current.workspace / current.dkim.key_file
    if path.exists() and not force:
        raise InputError(f"{path} already exists (--force replaces it; publish the new record)")
    key = generate_key(key_type)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(private_pem(key))
    except OSError as error:
        raise FileInputError(path, f"cannot write: {error.strerror}") from None
    record = dns_record(key)
    # A TXT string holds at most 255 characters; longer records are split into several strings.
    strings = " ".join(f'"{record[i : i + 250]}"' for i in range(0, len(record), 250))
    out.print(f"wrote {path} ({key_type})", markup=False)
    out.print(f'publish this DNS record, then set [dkim] domain = "{domain}":', markup=False)
    out.print(f"{selector}._domainkey.{domain}. IN TXT {strings}", markup=False)
