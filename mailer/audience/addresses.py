"""Validate and normalise addresses with email-validator; the normalised form is the identity."""

from __future__ import annotations

from dataclasses import dataclass

from email_validator import EmailNotValidError, validate_email

from mailer.audience.cleaning import has_controls
from mailer.errors import AddressError


@dataclass(frozen=True, slots=True)
class Address:
    """A validated address: ``email`` is the identity; ``smtputf8`` marks non-ASCII local parts."""

    email: str
    smtputf8: bool


def normalise(raw: str, *, check_dns: bool = False) -> Address:
    """Validate ``raw`` and return its canonical form, or raise AddressError saying why."""
    text = raw.strip()
    if not text:
        raise AddressError(raw, "empty address")
    if has_controls(raw):
        raise AddressError(raw, "contains a line break or another control character")
    try:
        valid = validate_email(text, check_deliverability=check_dns, allow_smtputf8=True)
    except EmailNotValidError as error:
        raise AddressError(raw, str(error)) from None
    # Local parts are case-sensitive in theory only; peers treat Alice@ and alice@ as one reader.
    return Address(email=valid.normalized.lower(), smtputf8=valid.smtputf8)
