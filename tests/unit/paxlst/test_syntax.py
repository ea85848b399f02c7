from __future__ import annotations

import itertools

import pytest

from manifest_exchange.paxlst.syntax import (
    _CANONICAL,
    COMPONENT,
    ELEMENT,
    TERMINATOR,
    UnreadableObjectError,
    _swap_around_releases,
    _swap_with_placeholders,
    canonicalise,
    split_at_messages,
)


def test_default_separators_without_una() -> None:
    canonical = canonicalise(b"UNB+UNOA:4+X'UNH+1+PAXLST'")
    segments = canonical.text.split(TERMINATOR)
    assert segments == [
        f"UNB{ELEMENT}UNOA{COMPONENT}4{ELEMENT}X",
        f"UNH{ELEMENT}1{ELEMENT}PAXLST",
        "",
    ]
    assert not canonical.has_una


def test_custom_una_separators() -> None:
    canonical = canonicalise(b"UNA:*.? $\nUNB*UNOA:4$\nNAD*FL***A:B$")
    assert canonical.service.element == "*"
    assert (
        canonical.text.split(TERMINATOR)[1].strip()
        == f"NAD{ELEMENT}FL{ELEMENT}{ELEMENT}{ELEMENT}A{COMPONENT}B"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"UNH+O?'NEIL'", "O'NEIL"),
        (b"UNH+A?+B'", "A+B"),
        (b"UNH+A?:B'", "A:B"),
        (b"UNH+WHY??'", "WHY?"),
        (b"UNH+??:X'", f"?{COMPONENT}X"),
        (b"UNH+?X'", "X"),
    ],
)
def test_release_character_makes_separators_data(raw: bytes, expected: str) -> None:
    text = canonicalise(raw).text
    assert text.split(ELEMENT, 1)[1].rstrip(TERMINATOR) == expected


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty_object"),
        (b"  \r\n ", "empty_object"),
        (bytes(range(256)), "binary_content"),
        (b"\x89PNG\r\n\x1a\n\x00\x00", "binary_content"),
        (b"hello world", "not_edifact"),
        (b"UNA:+", "bad_una"),
        (b"UNA:::? 'UNB'", "bad_una"),
    ],
)
def test_unreadable_objects_fail_with_a_code(data: bytes, code: str) -> None:
    with pytest.raises(UnreadableObjectError) as failure:
        canonicalise(data)
    assert failure.value.code == code


def test_latin1_falls_back_and_is_flagged() -> None:
    canonical = canonicalise("UNH+MÜLLER'".encode("latin-1"))
    assert canonical.encoding == "latin-1"
    assert canonical.has_non_ascii
    assert "MÜLLER" in canonical.text


def test_split_at_messages_keeps_segment_offsets() -> None:
    message = "UNH\x1d{n}\x1eBGM\x1d745\x1eUNT\x1d3\x1d{n}\x1e"
    text = "UNB\x1dX\x1e" + "".join(message.format(n=i) for i in range(50)) + "UNZ\x1d50\x1e"
    pieces = list(split_at_messages(text, max_chars=100))
    assert len(pieces) > 5
    assert "".join(piece for _, piece in pieces) == text
    for offset, piece in pieces:
        assert offset == text[: text.index(piece)].count(TERMINATOR)
        assert piece == pieces[0][1] or piece.startswith("UNH")


def test_both_ways_of_releasing_agree_on_every_short_text() -> None:
    """Objects with few releases are cut at them, others use placeholders: same text out."""
    separators = b":+'"
    to_canonical = bytes.maketrans(separators, _CANONICAL)
    for length in range(7):
        for chars in itertools.product(b"?:+'A", repeat=length):
            body = bytes(chars)
            assert _swap_around_releases(
                body.split(b"?"), b"?", to_canonical
            ) == _swap_with_placeholders(body, b"?", separators, to_canonical), body


def test_an_object_full_of_releases_reads_the_same() -> None:
    segment = b"NAD+FL+++O?'NEIL?:??'"
    many = canonicalise(b"UNH+1'" + segment * 300).text
    few = canonicalise(b"UNH+1'" + segment).text
    assert many.count("O'NEIL:?") == 300
    assert many.split(TERMINATOR)[1] == few.split(TERMINATOR)[1]
