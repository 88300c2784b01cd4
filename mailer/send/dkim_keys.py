"""DKIM keys: generate one, write it privately (0600), and the DNS TXT record to publish."""

from __future__ import annotations

import base64
import errno
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailer.config.checks import dns_name
from mailer.config.private import private_folder, write_private
from mailer.errors import DiskFullError, FileInputError, InputError
from mailer.send.dkim import PrivateKey


def generate_key(kind: str) -> PrivateKey:
    if kind == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    raise InputError(f"unknown key type {kind!r}: choose rsa or ed25519")


def private_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip


def dns_record(key: PrivateKey) -> str:
    """The TXT record value to publish at SELECTOR._domainkey.DOMAIN."""
    if isinstance(key, rsa.RSAPrivateKey):
        public = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"


def record_name(selector: str, domain: str) -> str:
    """Where the key's TXT record goes, SELECTOR._domainkey.DOMAIN; InputError unless both
    are DNS names."""
    for what, value in (("domain", domain), ("selector", selector)):
        problem = dns_name(value)
        if problem is not None:
            raise InputError(f"invalid DKIM {what} {value!r}: {problem}")
    return f"{selector}._domainkey.{domain}"


def write_key(path: Path, kind: str, *, replace: bool = False) -> PrivateKey:
    """Generate a key of ``kind`` (rsa or ed25519) and write it to ``path``, mode 0600, in a
    folder created 0700; a replaced key file is replaced whole, never left half written."""
    if path.exists() and not replace:
        raise InputError(f"{path} already exists (--force replaces it; publish the new record)")
    key = generate_key(kind)
    try:
        private_folder(path.parent)
        write_private(path, private_pem(key))
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise DiskFullError(f"key file {path}", "run the same keygen again") from None
        raise FileInputError(path, f"cannot write: {error.strerror}") from None
    return key


def txt_strings(record: str) -> str:
    """The record as quoted TXT strings: one string holds at most 255 characters."""
    return " ".join(f'"{record[i : i + 250]}"' for i in range(0, len(record), 250))
