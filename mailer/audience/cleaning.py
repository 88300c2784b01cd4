"""Text from outside (CSV cells, command options, forms) without C0 control characters or DEL."""

from __future__ import annotations

import re

from mailer.models import SURROGATES

BREAKS = re.compile(r"[\t\n\v\f\r\x1c-\x1e\x85\u2028\u2029]+")
CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def has_controls(value: str) -> bool:
    """True when ``value`` holds a C0 control character (line breaks and tabs among them) or DEL."""
    return CONTROLS.search(value) is not None


def clean(value: str) -> str:
    """``value`` on one line and without control characters: each run of line breaks and tabs
    becomes one space, every other C0 control character and DEL is removed, and a lone
    surrogate becomes U+FFFD."""
    if value.isprintable():
        return value  # the common case, kept fast
    return SURROGATES.sub("\ufffd", CONTROLS.sub("", BREAKS.sub(" ", value)))
