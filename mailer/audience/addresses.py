"""Validate and normalise addresses with email-validator; the normalised form is the identity."""

from __future__ import annotations

import re
from dataclasses import dataclass

import email_validator
from email_validator import EmailNotValidError, validate_email

from mailer.audience.cleaning import has_controls
from mailer.errors import AddressError


@dataclass(frozen=True, slots=True)
class Address:
    """A validated address: ``email`` is the identity; ``smtputf8`` marks non-ASCII local parts."""

    email: str
    smtputf8: bool


# The everyday address, for which email-validator's answer is known: an ASCII dot-atom local
# part of at most 64 characters, and host-name labels of at most 63, the last with a letter at
# its end, no Punycode (xn--) and no other two dashes third and fourth (RFC 5890's R-LDH).
# It is only a shortcut: anything else, and any name the library reserves, goes to the library.
ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
LABEL = r"(?![^.]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EVERYDAY = re.compile(rf"(?=.{{1,64}}@){ATOM}(?:\.{ATOM})*@((?:{LABEL}\.)+{LABEL})", re.ASCII)


def everyday(text: str) -> str | None:
    """``text`` as email-validator would normalise it (lower-cased), when it is an everyday
    address (EVERYDAY, at most 254 characters, no reserved domain); else None: ask it."""
    found = EVERYDAY.fullmatch(text) if len(text) <= 254 else None
    if found is None:
        return None
    domain = found.group(1).lower()  # at most 252 characters: the whole is at most 254
    if not domain[-1].isalpha():
        return None
    reserved = email_validator.SPECIAL_USE_DOMAIN_NAMES  # the library's list, as it reads it
    if any(domain == name or domain.endswith("." + name) for name in reserved):
        return None
    return text.lower()


REPLACED = "\ufffd"


def normalise(raw: str, *, check_dns: bool = False) -> Address:
    """Validate ``raw`` and return its canonical form, or raise AddressError saying why."""
    text = raw.strip()
    if not text:
        raise AddressError(raw, "empty address")
    if has_controls(raw):
        raise AddressError(raw, "contains a line break or another control character")
    if REPLACED in text:  # a decoder's mark for bytes it could not read: not what was typed
        raise AddressError(raw, "contains U+FFFD, where text was not read right (not UTF-8?)")
    if not check_dns and (known := everyday(text)) is not None:
        return Address(email=known, smtputf8=False)
    try:
        valid = validate_email(text, check_deliverability=check_dns, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise AddressError(raw, str(error)) from None
    # Local parts are case-sensitive in theory only; peers treat Alice@ and alice@ as one reader.
    return Address(email=valid.normalized.lower(), smtputf8=valid.smtputf8)
