"""Signed tokens: round trips, forgeries, and VERP addresses."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailer.errors import FileInputError
from mailer.tokens import SECRET_NAME, Signer, load_secret, parse_verp, verp_local_part

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


@pytest.mark.parametrize("text", ["", "\n", "ab12\n", "not hex at all\n"])
def test_a_secret_file_too_short_or_not_hex_is_one_error_never_an_empty_key(
    tmp_path: Path, text: str
) -> None:
    """As a creator that died between making the file and writing it would leave it."""
    (tmp_path / SECRET_NAME).write_text(text)
    with pytest.raises(FileInputError, match="not a hex secret; delete it to create a new one"):
        load_secret(tmp_path)


def test_a_file_system_without_hard_links_still_gets_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: str, target: Path) -> None:
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    secret = load_secret(tmp_path)
    assert len(secret) == 32 and load_secret(tmp_path) == secret
    path = tmp_path / SECRET_NAME
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_NAME]


def test_processes_creating_the_secret_at_once_all_read_the_same_one(tmp_path: Path) -> None:
    code = "import sys; from pathlib import Path; from mailer.tokens import load_secret\n"
    code += "print(load_secret(Path(sys.argv[1])).hex())"
    runs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(8)]  # fmt: skip
    answers = [run.communicate(timeout=60) for run in runs]
    assert [run.returncode for run in runs] == [0] * 8, answers
    written = (tmp_path / SECRET_NAME).read_text().strip()
    assert len(written) == 64
    assert {out.strip() for out, _ in answers} == {written}
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_NAME]  # no temporary file left


@given(st.integers(1, 10**9), st.integers(1, 10**6))
def test_verp_round_trips_and_survives_case_folding(subscriber: int, campaign: int) -> None:
    local = verp_local_part(SIGNER, subscriber, campaign)
    assert local == local.lower()
    assert parse_verp(SIGNER, f"{local.upper()}@Example.ORG") == (subscriber, campaign)
    forged = local[:-1] + ("0" if local[-1] != "0" else "1")
    assert parse_verp(SIGNER, f"{forged}@example.org") is None
