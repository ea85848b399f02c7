"""EDIFACT service characters: bytes -> canonical text that SQL can split without escaping rules.

Senders choose their own separators (``UNA:*.? $``), escape with a release character
(``O?'NEIL``) and wrap segments in CR/LF and indentation. This module turns one object into
*canonical text* where the separators are ASCII control characters that cannot occur in data
(we reject objects that contain them), and released characters are plain data again:

- ``ELEMENT`` (chr 29) between data elements,
- ``COMPONENT`` (chr 31) between components,
- ``TERMINATOR`` (chr 30) after each segment.

All work here is whole-object ``bytes`` operations (C speed); nothing loops per segment.
Separators are swapped on the bytes before decoding: service characters are ASCII, and no
byte of a multi-byte UTF-8 character is ASCII, so a byte translation cannot split a character.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

ELEMENT = "\x1d"
COMPONENT = "\x1f"
TERMINATOR = "\x1e"

# Placeholders for released characters while separators are being swapped.
_RELEASED = b"\x01\x02\x03\x04"
# Any control character other than TAB, LF, CR means the object is not an EDIFACT text.
_CONTROL_BYTES = bytes([*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F])
_NOT_CONTROL = bytes(b for b in range(256) if b not in _CONTROL_BYTES)
_CANONICAL = (COMPONENT + ELEMENT + TERMINATOR).encode("ascii")
_UTF8_BOM = b"\xef\xbb\xbf"
_MESSAGE_START = re.compile(TERMINATOR + r"[ \t\r\n]*UNH" + ELEMENT)


class UnreadableObjectError(ValueError):
    """The object cannot be read as an EDIFACT interchange at all."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True)
class ServiceCharacters:
    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str | None = "?"
    terminator: str = "'"

    @classmethod
    def from_una(cls, una: str) -> ServiceCharacters:
        """Read the six characters after ``UNA``."""
        if not una.isascii():
            raise UnreadableObjectError("bad_una", f"UNA service characters {una!r} are not ASCII")
        component, element, decimal, release, _reserved, terminator = tuple(una)
        chars = cls(component, element, decimal, None if release == " " else release, terminator)
        separators = [component, element, terminator]
        if len(set(separators)) != 3 or any(c.isalnum() or c == " " for c in separators):
            raise UnreadableObjectError("bad_una", f"UNA service characters {una!r} are not usable")
        if release is not None and release in separators:
            raise UnreadableObjectError(
                "bad_una", f"UNA release character {release!r} is also a separator"
            )
        return chars


@dataclass(frozen=True)
class CanonicalText:
    text: str
    encoding: str
    service: ServiceCharacters
    has_una: bool
    has_non_ascii: bool


def decode(data: bytes) -> tuple[str, str]:
    """Decode as UTF-8, falling back to Latin-1 (which never fails) for legacy senders."""
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


def canonicalise(data: bytes) -> CanonicalText:
    """Turn one object's bytes into canonical text.

    Raises:
        UnreadableObjectError: empty object, binary content, or not an EDIFACT interchange.
    """
    data = data.lstrip(b" \t\r\n")
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM) :].lstrip(b" \t\r\n")
    if not data:
        raise UnreadableObjectError("empty_object", "the object is empty")
    controls = data.translate(None, _NOT_CONTROL)
    if controls:
        offset = data.index(controls[:1])
        raise UnreadableObjectError(
            "binary_content",
            f"control character 0x{controls[0]:02x} at byte {offset}: not an EDIFACT text",
        )
    if data.startswith(b"UNA"):
        if len(data) < 9:
            raise UnreadableObjectError("bad_una", "the UNA service string is cut short")
        service = ServiceCharacters.from_una(data[3:9].decode("latin-1"))
        body, has_una = data[9:], True
    elif data.startswith((b"UNB", b"UNH")):
        service, body, has_una = ServiceCharacters(), data, False
    else:
        raise UnreadableObjectError(
            "not_edifact", "expected UNA, UNB or UNH at the start of the object"
        )
    text, encoding = decode(_swap_separators(body, service))
    return CanonicalText(
        text=text,
        encoding=encoding,
        service=service,
        has_una=has_una,
        has_non_ascii=not body.isascii(),
    )


def _swap_separators(body: bytes, service: ServiceCharacters) -> bytes:
    separators = (service.component + service.element + service.terminator).encode("ascii")
    to_canonical = bytes.maketrans(separators, _CANONICAL)
    release = service.release.encode("ascii") if service.release else b""
    releases = body.count(release) if release else 0
    if not releases:
        return body.translate(to_canonical)
    if releases <= _FEW_RELEASES:
        return _swap_around_releases(body.split(release), release, to_canonical)
    return _swap_with_placeholders(body, release, separators, to_canonical)


# Senders release a character now and then (O?'NEIL); an object cut at each release is then
# rebuilt in a few steps. An object full of releases takes whole-object replaces instead.
_FEW_RELEASES = 256


def _swap_around_releases(parts: list[bytes], release: bytes, to_canonical: bytes) -> bytes:
    """Rebuild ``release.join(parts)`` with separators swapped and released characters kept.

    A release stands before each part after the first, so a part's first byte is data. An
    empty part means that byte is the next release: it is data, and the part after it is not
    released.
    """
    out = [parts[0].translate(to_canonical)]
    index = 1
    while index < len(parts):
        part = parts[index]
        if not part and index + 1 < len(parts):
            out += (release, parts[index + 1].translate(to_canonical))
            index += 2
        else:  # a release at the very end of the object stands for nothing
            out += (part[:1], part[1:].translate(to_canonical))
            index += 1
    return b"".join(out)


def _swap_with_placeholders(
    body: bytes, release: bytes, separators: bytes, to_canonical: bytes
) -> bytes:
    body = body.replace(release + release, _RELEASED[:1])
    for placeholder, separator in zip(_RELEASED[1:], separators, strict=True):
        body = body.replace(release + bytes([separator]), bytes([placeholder]))
    # A release before an ordinary character just stands for that character.
    body = body.replace(release, b"")
    body = body.translate(to_canonical)
    return body.translate(bytes.maketrans(_RELEASED, release + separators))


def split_at_messages(text: str, max_chars: int) -> Iterator[tuple[int, str]]:
    """Cut canonical text into pieces of about ``max_chars`` at message starts.

    Yields ``(segment_offset, piece)``: how many segments precede the piece, and the piece.
    A piece is only larger than ``max_chars`` when one message is.
    """
    start, offset = 0, 0
    while len(text) - start > max_chars:
        match = None
        for candidate in _MESSAGE_START.finditer(text, start + 1, start + max_chars):
            match = candidate
        if match is None:  # one huge message: look past the limit for the next start
            match = _MESSAGE_START.search(text, start + max_chars)
            if match is None:
                break
        cut = match.start() + 1  # keep the terminator with the previous piece
        piece = text[start:cut]
        yield offset, piece
        offset += piece.count(TERMINATOR)
        start = cut
    yield offset, text[start:]
