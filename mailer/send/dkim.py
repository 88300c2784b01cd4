"""DKIM signing (RFC 6376, relaxed/relaxed), canonical as dkimpy's; `cryptography` signs."""

from __future__ import annotations

import base64
import functools
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from mailer.compose.relaxed import relaxed_body
from mailer.config import Settings
from mailer.errors import FileInputError, InputError

# Signed when present; From is listed twice so that a second From cannot be added afterwards.
SIGNED = (
    b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
    b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type", b"from",
)  # fmt: skip
WSP = re.compile(rb"[\t ]+")
PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class DkimSigner:
    """Signs finished messages; everything but the body hash and the key operation is fixed."""

    domain: str
    selector: str
    key: PrivateKey

    @classmethod
    def from_file(cls, domain: str, selector: str, path: Path) -> DkimSigner:
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except OSError as error:
            raise FileInputError(path, f"cannot read the DKIM key: {error.strerror}") from None
        except (ValueError, TypeError, UnsupportedAlgorithm) as error:
            raise FileInputError(path, f"not a PEM private key: {error}") from None
        if not isinstance(key, rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
            raise FileInputError(path, "the DKIM key must be RSA or Ed25519")
        if isinstance(key, rsa.RSAPrivateKey) and key.key_size < 1024:
            raise FileInputError(path, f"RSA key of {key.key_size} bits: use 2048")
        return cls(domain, selector, key)

    @property
    def algorithm(self) -> bytes:
        return b"rsa-sha256" if isinstance(self.key, rsa.RSAPrivateKey) else b"ed25519-sha256"

    @cached_property
    def _fixed(self) -> bytes:
        return (
            b" v=1; a=" + self.algorithm + b"; c=relaxed/relaxed;\r\n d=" + self.domain.encode()
            + b"; s=" + self.selector.encode() + b"; t="
        )  # fmt: skip

    def sign(self, message: Sequence[bytes], body_hash: bytes | None = None) -> list[bytes]:
        """Return the chunks of ``message`` with a DKIM-Signature header in front (CRLF
        message in, CRLF out). ``body_hash``, when known, is the SHA-256 of the relaxed
        canonical body; then only the chunks up to the body are read."""
        if body_hash is None:
            head = b"".join(message)
        else:
            head = b""
            for chunk in message:  # the header block sits in the first few small chunks
                head += chunk
                if head.find(b"\r\n\r\n", max(0, len(head) - len(chunk) - 3)) >= 0:  # new part
                    break
        end = head.find(b"\r\n\r\n")
        if end < 0:
            raise InputError("cannot DKIM-sign a message without a header/body separator")
        if body_hash is None:
            body_hash = hashlib.sha256(relaxed_body(head[end + 4 :])).digest()
        value, digest = self.prepare(head[:end], body_hash)
        encoded = base64.b64encode(self.key_sign(digest))
        folded = b"\r\n ".join(encoded[i : i + 72] for i in range(0, len(encoded), 72))
        return [b"DKIM-Signature:" + value + folded + b"\r\n", *message]

    def prepare(self, head: bytes, body_hash: bytes) -> tuple[bytes, bytes]:
        """Return the DKIM-Signature value up to ``b=`` and the digest the key signs."""
        headers = canonical_headers(head)
        names, h_tag = _signed_names(frozenset(name for name, _ in headers))
        value = (
            self._fixed + str(int(time.time())).encode() + b";\r\n h=" + h_tag
            + b";\r\n bh=" + base64.b64encode(body_hash) + b";\r\n b="
        )  # fmt: skip
        import dkim  # dkimpy and its DNS resolver: ~40 ms that only signing runs pay

        signed = [name + b":" + text for name, text in dkim.select_headers(headers, names)]
        signed.append(b"dkim-signature:" + _relaxed_value(value))  # no CRLF after this one
        return value, hashlib.sha256(b"".join(signed)).digest()

    def key_sign(self, digest: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256()))
        return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256


def canonical_headers(head: bytes) -> list[tuple[bytes, bytes]]:
    """Relaxed header canonicalisation (RFC 6376 3.4.2) of a CRLF header block, as dkimpy's
    rfc822_parse + Relaxed.canonicalize_headers give it, for the well-formed headers we write."""
    unfolded = head.replace(b"\r\n ", b" ").replace(b"\r\n\t", b"\t")
    if b"\t" in unfolded or b"  " in unfolded:
        unfolded = WSP.sub(b" ", unfolded)
    result = []
    for line in unfolded.split(b"\r\n"):
        if line:
            name, _, value = line.partition(b":")
            result.append((name.lower().rstrip(), value.strip() + b"\r\n"))
    return result


def _relaxed_value(value: bytes) -> bytes:
    value = value.replace(b"\r\n", b"")
    if b"\t" in value or b"  " in value:
        value = WSP.sub(b" ", value)
    return value.strip()


@functools.lru_cache(maxsize=64)
def _signed_names(present: frozenset[bytes]) -> tuple[tuple[bytes, ...], bytes]:
    """The SIGNED names among the ``present`` ones (From always), and the folded ``h=`` value:
    the same for every message of a campaign, so worked out once."""
    names = tuple(name for name in SIGNED if name in present or name == b"from")
    return names, _fold_names(names)


def _fold_names(names: tuple[bytes, ...]) -> bytes:
    """``h=`` names joined by colons, folded before a colon so no line passes 78 characters."""
    lines, line = [], b""
    for name in names:
        if line and len(line) + len(name) > 70:
            lines.append(line)
            line = b""
        line += (b":" if line or lines else b"") + name
    return b"\r\n ".join([*lines, line])


def dkim_signer(settings: Settings) -> DkimSigner | None:
    """The configured DKIM signer, or None when [dkim] domain is empty."""
    wanted = settings.dkim
    if not wanted.domain:
        return None
    key = settings.workspace / wanted.key_file
    return DkimSigner.from_file(wanted.domain, wanted.selector, key)
