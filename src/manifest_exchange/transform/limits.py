"""Field lengths and plausible dates: the one place the exchange's limits are set.

The SQL reads them as bound parameters (:func:`sql_parameters`) and derives what the suites in
``expectations/`` check (the oversized field, whether a date is plausible); the suites name the
age limit as a GX suite parameter (:func:`suite_parameters`); and
``docs/partner-guide.md`` lists them in a table that a unit test compares with
:func:`partner_guide_rows`. A value beyond a limit quarantines its traveller (or its message,
for a flight's values) under the check named here, never truncates it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# PAXLST NAD C080 holds five party-name components of an..35 (3036, D.02B and D.05B): the
# surname and up to four given names, which the contract joins with one space each.
NAME_COMPONENT_LENGTH = 35
GIVEN_NAME_COMPONENTS = 4


# One check holds every length: one expectation per suite costs a fraction of one per field,
# and GX's cost is per expectation and batch, whatever the rows.
LENGTH_CHECK = "field_too_long"


@dataclass(frozen=True)
class LengthLimit:
    """A published string column's longest value, in characters."""

    column: str
    max_length: int
    scope: str  # "message" quarantines the message and its travellers; "traveller" one row

    @property
    def parameter(self) -> str:
        return f"{self.column}_max_length"


LENGTH_LIMITS = (
    # BGM document code an..3 and message function code an..3, as the contract joins them.
    LengthLimit("message_function", 6, "message"),
    # The contract's carrier code is 2-3 characters (TDT 8028 or its designator).
    LengthLimit("carrier_code", 3, "message"),
    LengthLimit("surname", NAME_COMPONENT_LENGTH, "traveller"),
    LengthLimit(
        "given_names",
        GIVEN_NAME_COMPONENTS * NAME_COMPONENT_LENGTH + GIVEN_NAME_COMPONENTS - 1,
        "traveller",
    ),
    # string(3) in the contract: alpha-3 country and IATA airport codes.
    LengthLimit("residence_country", 3, "traveller"),
    LengthLimit("embark_airport", 3, "traveller"),
    LengthLimit("debark_airport", 3, "traveller"),
)

# Scheduled departures (local date) accepted. Absolute, not relative to the run: the outcome of
# an object must not depend on when it is processed (replays, backfills and the test corpora
# carry fixed dates, the GTAS samples 2007-2017), and a PAXLST YYMMDD date is 2000-2099 anyway.
# Both ends keep every derived timestamp (UTC, +/- 14 h) far inside what pyarrow and pandas read.
FLIGHT_DATE_MIN = dt.date(2000, 1, 1)
FLIGHT_DATE_MAX = dt.date(2099, 12, 31)
# Date of birth: on or before the departure date and at most this many years before it; with
# the flight window, never before 1880.
MAX_AGE_YEARS = 120
# Document expiry: on or after the departure date (document_expired) and at most this many
# years after it. Passports and visas run ten years at most; twice that leaves room for any
# real document and still catches 9999-12-31 and two-digit-year slips.
DOC_VALID_YEARS_MAX = 20


def sql_parameters() -> dict[str, object]:
    """The lengths and date windows, as the SQL in ``sql/`` binds them."""
    return {
        "flight_date_min": FLIGHT_DATE_MIN,
        "flight_date_max": FLIGHT_DATE_MAX,
        "doc_valid_years_max": DOC_VALID_YEARS_MAX,
        **{limit.parameter: limit.max_length for limit in LENGTH_LIMITS},
    }


def suite_parameters() -> dict[str, int]:
    """The limits the suites name as ``{"$PARAMETER": ...}``."""
    return {"max_age_years": MAX_AGE_YEARS}


def partner_guide_rows() -> list[tuple[str, str, str]]:
    """(column, limit, what happens) for each limit, as ``docs/partner-guide.md`` lists them."""
    rows = []
    for limit in LENGTH_LIMITS:
        what = "the message and its travellers" if limit.scope == "message" else "the traveller"
        rows.append(
            (
                limit.column,
                f"at most {limit.max_length} characters",
                f"{what} quarantined with reason `{LENGTH_CHECK}`",
            )
        )
    rows += [
        (
            "flight_date",
            f"{FLIGHT_DATE_MIN.isoformat()} to {FLIGHT_DATE_MAX.isoformat()}",
            "the message and its travellers quarantined with reason `flight_date_plausible`",
        ),
        (
            "date_of_birth",
            f"on or before the departure date, at most {MAX_AGE_YEARS} years before it",
            "the traveller quarantined with reason `date_of_birth_plausible`",
        ),
        (
            "doc_expiry_date",
            f"on or after the departure date, at most {DOC_VALID_YEARS_MAX} years after it",
            "the traveller quarantined with reason `document_expired` (before departure) "
            "or `document_expiry_plausible` (too far after it)",
        ),
    ]
    return rows
