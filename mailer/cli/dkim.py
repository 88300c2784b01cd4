"""CLI command for DKIM: dkim keygen writes a signing key and prints the DNS record."""

from __future__ import annotations

from typing import Annotated

import typer

from mailer.cli.common import Typer, out, settings
from mailer.errors import InputError
from mailer.send.dkim_keys import dns_record, record_name, txt_strings, write_key

app = Typer(help="DKIM signing keys.", no_args_is_help=True)


@app.command("keygen", epilog="Example: mailer dkim keygen --domain example.org")
def dkim_keygen(
    key_type: Annotated[str, typer.Option("--type", help="rsa (2048 bits) or ed25519.")] = "rsa",
    domain: Annotated[
        str | None, typer.Option(help="Signing domain (default: [dkim] domain).")
    ] = None,
    selector: Annotated[
        str | None, typer.Option(help="Selector (default: [dkim] selector).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing key file.")] = False,
) -> None:
    """Write a DKIM private key to [dkim] key_file and print the DNS TXT record to publish."""
    current = settings()
    domain = domain or current.dkim.domain
    selector = selector or current.dkim.selector
    if not domain:
        raise InputError("no signing domain: give --domain or set [dkim] domain")
    name = record_name(selector, domain)  # before any key is written
    path = current.workspace / current.dkim.key_file
    key = write_key(path, key_type, replace=force)
    strings = txt_strings(dns_record(key))
    out.print(f"wrote {path} ({key_type})", markup=False)
    out.print(f'publish this DNS record, then set [dkim] domain = "{domain}":', markup=False)
    out.print(f"{name}. IN TXT {strings}", markup=False)
