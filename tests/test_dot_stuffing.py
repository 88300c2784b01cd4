"""DATA payloads from a message's chunks equal those from its joined bytes, however it is cut."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from mailer.compose.mime import Shared
from mailer.send.dot_stuffing import DataPayload, payload

LINES = st.lists(
    st.sampled_from([b".", b"..", b".x", b"x.", b"a . b", b"", b"From me", b"\xc3\xa9"]),
    max_size=12,
)
ENDINGS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r"])


@st.composite
def cut_messages(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    lines = draw(LINES)
    endings = [draw(ENDINGS) for _ in lines]
    message = b"".join(line + ending for line, ending in zip(lines, endings, strict=True))
    if draw(st.booleans()):
        message += draw(st.sampled_from([b"no end", b".", b"x"]))
    cuts = sorted(draw(st.lists(st.integers(0, len(message)), max_size=6)))
    edges = [0, *cuts, len(message)]
    chunks = [message[a:b] for a, b in itertools.pairwise(edges)]
    return message, [Shared(c) if draw(st.booleans()) else c for c in chunks]


@given(cut_messages())
def test_any_cut_gives_the_payload_of_the_whole(case: tuple[bytes, list[bytes]]) -> None:
    """Cut anywhere, some pieces shared (stuffed alone, and remembered) and some not (joined
    with their neighbours): the same bytes on the wire, twice over."""
    message, chunks = case
    make = DataPayload()
    assert make(chunks) == payload(message)
    assert make(chunks) == payload(message)  # with what it remembered


def test_a_shared_chunk_is_stuffed_once_and_stays_right_for_every_reader() -> None:
    """However short (a header every reader gets), a shared chunk is stuffed once."""
    shared = Shared(b".dotted line\r\n" + b"x" * 70 + b"\r\n")
    make = DataPayload()
    for name in (b"Ada", b".Bo", b"Cy"):  # a personal line that itself needs a dot
        chunks = [b"To: " + name + b"\r\n\r\n", name + b"\r\n", shared, b".end\r\n"]
        assert make(chunks) == payload(b"".join(chunks))
    assert list(make.remembered.values()) == [(shared, shared.replace(b"\r\n.", b"\r\n.."))]
    # A chunk after one that does not end a line starts mid-line: its dot is not doubled.
    assert make([b"x", shared]) == payload(b"x" + shared)
    assert make([b"x", shared]).startswith(b"x.dotted")


def test_a_long_chunk_with_bare_line_endings_is_mended_like_the_whole() -> None:
    foreign = Shared(b"line\n.dot\rlast\n" * 100)
    make = DataPayload()
    chunks = [b"Subject: s\r\n\r\n", foreign]
    assert make(chunks) == payload(b"".join(chunks))
    assert make(chunks) == payload(b"".join(chunks))  # remembered as foreign: still mended


def test_messages_built_elsewhere_are_not_kept() -> None:
    """A message signed in a build process arrives as new bytes each time: none is kept."""
    make = DataPayload()
    for n in range(3):
        whole = b"Subject: %d\r\n\r\n" % n + b".line\r\n" * 1000
        assert make([whole]) == payload(whole)
    assert make.remembered == {}


def test_a_shared_chunk_without_dots_is_kept_once_not_copied() -> None:
    annex = Shared((b"QUJD" * 19 + b"\r\n") * 100)  # base64 lines: no dot anywhere
    make = DataPayload()
    assert make([b"To: a\r\n\r\n", annex]) == payload(b"To: a\r\n\r\n" + annex)
    assert make.remembered[id(annex)][1] is annex


def test_a_readers_own_line_that_starts_with_a_dot_is_doubled_where_it_sits() -> None:
    """Quoted-printable breaks a long line anywhere, so a reader's own link can go on with a
    line that starts with a dot: that line's dot is doubled, and only in that chunk."""
    shared = Shared(b"<p>before</p>\r\n")
    own = b'<a href=3D"https://example.org/u/0=\r\n.0064">Unsubscribe</a>\r\n'
    chunks = [b"To: reader100@example.org\r\n\r\n", shared, own, shared]
    made = DataPayload()(chunks)
    assert made == payload(b"".join(chunks))
    assert b"=\r\n..0064" in made and made.count(b"\r\n..") == 1
