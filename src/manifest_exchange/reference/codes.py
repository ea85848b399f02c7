"""Reference data shipped with the project: airports (IATA, country, time zone) and countries.

Airports come from the maintained ``airportsdata`` table, countries from ``pycountry`` (ISO 3166),
plus the ICAO 9303 codes that are not ISO countries.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import airportsdata
import pyarrow as pa
import pycountry

# ICAO 9303 codes used in travel documents that are not ISO 3166 countries.
ICAO_SPECIAL_CODES: dict[str, str] = {
    "D": "DEU",  # German documents carry D, not DEU
    "XXA": "XXA",  # stateless
    "XXB": "XXB",  # refugee (1951 convention)
    "XXC": "XXC",  # refugee (other)
    "XXX": "XXX",  # unspecified nationality
    "GBD": "GBD",
    "GBN": "GBN",
    "GBO": "GBO",
    "GBP": "GBP",
    "GBS": "GBS",
    "UNO": "UNO",
    "UNA": "UNA",
    "UNK": "UNK",  # Kosovo (UN mission)
    "EUE": "EUE",
    "RKS": "RKS",
}


@dataclass(frozen=True)
class Airport:
    iata: str
    country: str  # ISO 3166 alpha-3
    tz: str
    lat: float
    lon: float


@cache
def country_alpha3_by_code() -> dict[str, str]:
    """Every accepted country code (alpha-2, alpha-3, ICAO specials) -> its alpha-3."""
    mapping: dict[str, str] = {}
    for country in pycountry.countries:
        mapping[country.alpha_3] = country.alpha_3
        mapping[country.alpha_2] = country.alpha_3
    mapping.update(ICAO_SPECIAL_CODES)
    return mapping


@cache
def airports() -> dict[str, Airport]:
    """IATA code -> airport, from the shipped airport table."""
    alpha3 = country_alpha3_by_code()
    table: dict[str, Airport] = {}
    for code, row in airportsdata.load("IATA").items():
        country = alpha3.get(row["country"])
        if country is None or not row["tz"]:
            continue
        table[code] = Airport(code, country, row["tz"], float(row["lat"]), float(row["lon"]))
    return table


def airports_arrow() -> pa.Table:
    """The airport table as Arrow, for joins in DuckDB."""
    rows = list(airports().values())
    return pa.table(
        {
            "iata": pa.array([a.iata for a in rows], pa.string()),
            "country": pa.array([a.country for a in rows], pa.string()),
            "tz": pa.array([a.tz for a in rows], pa.string()),
        }
    )


def countries_arrow() -> pa.Table:
    """Accepted country codes and their alpha-3 form, for joins in DuckDB."""
    mapping = country_alpha3_by_code()
    return pa.table(
        {
            "code": pa.array(list(mapping), pa.string()),
            "alpha3": pa.array(list(mapping.values()), pa.string()),
        }
    )
