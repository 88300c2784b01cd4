"""The everyday-address shortcut answers exactly as email-validator does, or leaves it to it."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailer.audience.addresses import everyday, normalise
from mailer.errors import AddressError

# Pieces that sit near every rule the shortcut copies: dots, dashes, the R-LDH and Punycode
# dashes, digits-only and reserved top labels, atext specials, case, non-ASCII, long runs.
LOCAL = st.lists(
    st.sampled_from(["a", "Z", "0", ".", "-", "+", "_", "'", "!", "~", "é", " ", '"', "x" * 30]),
    min_size=1,
    max_size=8,
).map("".join)
LABEL = st.lists(
    st.sampled_from(["a", "B", "7", "-", "--", "xn--", "ab--", "ä", "_", "q" * 40]),
    min_size=1,
    max_size=5,
).map("".join)
TOP = st.sampled_from(["org", "COM", "de", "123", "local", "localhost", "test", "invalid", "arpa",
                       "onion", "x-y", "a1", "1a", "ü", ""])  # fmt: skip
ADDRESSES = st.one_of(
    st.builds(
        lambda local, labels, top: f"{local}@{'.'.join([*labels, top])}",
        LOCAL,
        st.lists(LABEL, max_size=3),
        TOP,
    ),
    st.from_regex(  # near the everyday shape: lengths, dashes and dots anywhere
        r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,70}@([A-Za-z0-9-]{1,65}\.){1,3}[A-Za-z0-9-]{1,8}",
        fullmatch=True,
    ),
)


def library(text: str) -> str | None:
    try:
        found = validate_email(text, check_deliverability=False, allow_smtputf8=True)
    except EmailNotValidError:
        return None
    return found.normalized.lower()


@settings(max_examples=500)
@given(ADDRESSES)
@example("reader1@example1.org")
@example("A.B+tag@Sub.Example.COM")
@example("-x@example.org")
@example("x@ab--c.com")
@example("~@7---11.corp")
@example("x@foo.local")
@example(("l" * 64) + "@example.org")
@example(("l" * 65) + "@example.org")
@example("x@" + ".".join(["d" * 63] * 4) + ".org")
def test_the_shortcut_gives_the_library_s_answer_or_none(text: str) -> None:
    known = everyday(text)
    if known is not None:
        assert known == library(text), text


@pytest.mark.parametrize(
    "text", ["reader1@example1.org", "Ada.Lovelace+news@Mail.Example.CO.UK", "o'brien@example.ie"]
)
def test_everyday_addresses_take_the_shortcut(text: str) -> None:
    assert everyday(text) == text.lower() == normalise(text).email


@pytest.mark.parametrize(
    ("text", "reason"),
    [("a..b@example.org", "period"), ("x@localhost", "period"), ("x@foo.local", "special-use")],
)
def test_what_the_shortcut_leaves_gets_the_library_s_reason(text: str, reason: str) -> None:
    assert everyday(text) is None
    with pytest.raises(AddressError, match=reason):
        normalise(text)
