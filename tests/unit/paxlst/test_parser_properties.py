"""Property-based tests of the PAXLST parser: generated valid messages round-trip, and arbitrary
bytes never crash it (a fixed-budget fuzz run)."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifest_exchange.local.generate.paxlst import SYNTAXES, GeneratorOptions, Syntax, _Generator
from manifest_exchange.paxlst.parser import PaxlstParser, SourceObject

# Letters plus every service character any of the syntaxes uses, so escaping is exercised.
SPECIALS = "'+:?*$-."
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
word = st.text(alphabet=LETTERS + SPECIALS, min_size=1, max_size=20).filter(
    lambda w: w[0] in LETTERS and w[-1] in LETTERS
)
document = st.text(alphabet=LETTERS + "0123456789" + SPECIALS, min_size=5, max_size=15).filter(
    lambda d: d[0].isalnum() and d[-1].isalnum()
)
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def parser() -> Iterator[PaxlstParser]:
    with PaxlstParser("TWN", "JPN") as instance:
        yield instance


def _render_one(traveller_changes: dict[str, object], syntax: Syntax) -> bytes:
    generator = _Generator(
        GeneratorOptions(dt.date(2026, 12, 1), flights=1, seed=5, defect_rate=0.0)
    )
    flight = generator.flights()[0]
    traveller = dataclasses.replace(flight.passengers[0], **traveller_changes)
    message = generator._passenger_message(flight, [traveller], 1, 1, "CI0100/261201/0700")
    sent_at = flight.legs[0].dep_local - dt.timedelta(hours=1)
    rendered = generator._interchange(flight, [message], sent_at, syntax, truncate=False)
    return rendered.data


@SETTINGS
@given(
    surname=word,
    given_names=st.lists(word, min_size=1, max_size=3).map(" ".join),
    doc_number=document,
    # DTM+329 carries YYMMDD: a birth date 100+ years before the message cannot be told from
    # one 100 years later, so the property holds for the last 99 years (see the closing note).
    date_of_birth=st.dates(dt.date(1927, 12, 2), dt.date(2025, 12, 31)),
    syntax=st.sampled_from([syntax for syntax, _ in SYNTAXES]),
)
def test_a_generated_traveller_round_trips(
    parser: PaxlstParser,
    surname: str,
    given_names: str,
    doc_number: str,
    date_of_birth: dt.date,
    syntax: Syntax,
) -> None:
    data = _render_one(
        {
            "surname": surname,
            "given_names": given_names,
            "doc_number": doc_number,
            "date_of_birth": date_of_birth,
        },
        syntax,
    )

    result = parser.parse([SourceObject("property.edi", data)])

    assert result.errors.num_rows == 0, result.errors.to_pylist()
    (person,) = result.persons.to_pylist()
    assert person["surname"] == surname
    assert person["given_names"] == given_names
    assert person["doc_number"] == doc_number.replace("-", "")  # normalised on purpose
    assert person["date_of_birth"] == date_of_birth


@SETTINGS
@given(
    data=st.binary(max_size=4096) | st.text(alphabet="UNABGHZT+:?' \n0123456789").map(str.encode)
)
def test_arbitrary_bytes_never_crash_the_parser(parser: PaxlstParser, data: bytes) -> None:
    result = parser.parse([SourceObject("fuzz.edi", data)])
    # Every object is accounted for: either read into messages or reported as an error.
    assert result.objects.num_rows == 1
    assert result.messages.num_rows > 0 or result.errors.num_rows > 0 or not data.strip()
