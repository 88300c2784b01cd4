"""Signed tokens: round trips, forgeries, and VERP addresses."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from mailer.tokens import Signer, load_secret, parse_verp, verp_local_part

SIGNER = Signer(b"k" * 32)


@given(st.sampled_from(["u", "c"]), st.integers(0, 2**40), st.integers(0, 2**20))
def test_tokens_round_trip(purpose: str, subscriber: int, list_id: int) -> None:
    subject = SIGNER.check(SIGNER.make(purpose, subscriber, list_id))
    assert subject is not None
    assert (subject.purpose, subject.subscriber_id, subject.list_id) == (
        purpose,
        subscriber,
        list_id,
    )


@given(st.integers(1, 10**6), st.integers(0, 30))
def test_changing_any_character_breaks_the_token(subscriber: int, position: int) -> None:
    token = SIGNER.make("u", subscriber, 1)
    index = position % len(token)
    swapped = "b" if token[index] != "b" else "c"
    assert SIGNER.check(token[:index] + swapped + token[index + 1 :]) is None
    assert Signer(b"other" * 8).check(token) is None


def test_secret_is_created_once_and_private(tmp_path: Path) -> None:
    first = load_secret(tmp_path)
    assert load_secret(tmp_path) == first and len(first) == 32
    assert (tmp_path / ".mailer-secret").stat().st_mode & 0o777 == 0o600


@given(st.integers(1, 10**9), st.integers(1, 10**6))
def test_verp_round_trips_and_survives_case_folding(subscriber: int, campaign: int) -> None:
    local = verp_local_part(SIGNER, subscriber, campaign)
    assert local == local.lower()
    assert parse_verp(SIGNER, f"{local.upper()}@Example.ORG") == (subscriber, campaign)
    forged = local[:-1] + ("0" if local[-1] != "0" else "1")
    assert parse_verp(SIGNER, f"{forged}@example.org") is None
