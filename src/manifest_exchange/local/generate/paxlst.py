"""Synthetic PAXLST D:05B interchanges (and airport CSV exports) for a day of departures.

The output is realistic on purpose, pitfalls included: varied separators (custom UNA, no UNA,
CRLF, indentation), multi-part flights (``01:C`` ... ``nn:F``), crew lists, transit passengers,
progressive flights, exact resends under a new envelope reference, release characters in names,
non-ASCII names and, at a configurable rate, defects: impossible dates, expired or missing
documents, CNT mismatches, wrong UNT counts, truncated transmissions and missing final parts.

With ``csv_rate``, the departure airport also exports a share of flights as CSV (the layout of
:mod:`manifest_exchange.airport_csv`) with the same travellers and the same defects where the
format can carry them (an impossible date is written as such, a truncated export is cut
mid-line); with ``csv_only`` the airline sends no PAXLST for those flights.

Everything is drawn from one seeded :class:`random.Random`, so the same options give the same
bytes. The returned :class:`Corpus` also carries the ground truth (who is in which object and
which defects were planted) so tests can check the parser and pipeline against it.
"""

from __future__ import annotations

import csv
import functools
import io
import itertools
import math
import random
import re
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from manifest_exchange.airport_csv.exports import LAYOUT as CSV_LAYOUT
from manifest_exchange.local.generate import catalog
from manifest_exchange.reference.codes import airports

Segment = list[str | list[str]]
CSV_COLUMNS = tuple(CSV_LAYOUT)

TRAVELLER_DEFECTS: list[tuple[str, int]] = [
    ("impossible_dob", 3),
    ("expired_doc", 3),
    ("missing_doc", 2),
    ("empty_doc_number", 1),
    ("bad_sex_code", 1),
    ("bad_nationality", 1),
]
FLIGHT_DEFECTS: list[tuple[str, int]] = [
    ("cnt_mismatch", 3),
    ("truncated", 2),
    ("wrong_unt_count", 1),
    ("missing_final_part", 1),
]


@dataclass(frozen=True)
class Syntax:
    """Service characters and layout of one interchange."""

    name: str
    component: str = ":"
    element: str = "+"
    decimal: str = "."
    release: str = "?"
    reserved: str = " "
    terminator: str = "'"
    has_una: bool = True
    line_end: str = ""
    indent: str = ""

    @property
    def una(self) -> str:
        return (
            f"UNA{self.component}{self.element}{self.decimal}{self.release}"
            f"{self.reserved}{self.terminator}"
        )


# NAD qualifiers of the travellers the generator writes: passenger, crew, transit passenger.
TRAVELLER_PARTIES = ("FL", "FM", "DDU")

SYNTAXES: list[tuple[Syntax, int]] = [
    (Syntax("standard"), 40),
    (Syntax("no_una", has_una=False), 15),
    (Syntax("lines", line_end="\n"), 20),
    (Syntax("crlf_indent", line_end="\r\n", indent="  "), 10),
    (Syntax("custom", element="*", terminator="$", line_end="\n"), 10),
    (Syntax("reserved_star", reserved="*"), 5),
]


@dataclass(frozen=True)
class GeneratorOptions:
    """What to generate.

    Attributes:
        flight_date: local departure date of the day's traffic.
        flights: number of flights (all destinations; most go to Japan).
        seed: the random seed; same options, same bytes.
        defect_rate: share of travellers with a data defect.
        flight_defect_rate: share of flights with a structural defect (default: five times
            ``defect_rate``).
        resend_rate: share of objects re-sent unchanged under a new envelope reference.
        part_size: most travellers in one message before a flight is split into parts.
        prefix: key prefix of the objects.
        csv_rate: share of flights the departure airport also exports as CSV.
        csv_only: the flights exported as CSV get no airline PAXLST.
        origin_country: ``TWN`` (departures from Taiwan) or ``JPN`` (departures from Japan,
            for the reciprocal direction: Japan -> Taiwan and other routes out of Japan).
    """

    flight_date: date
    flights: int = 150
    seed: int = 1
    defect_rate: float = 0.02
    flight_defect_rate: float | None = None
    resend_rate: float = 0.03
    part_size: int = 120
    prefix: str = "paxlst"
    csv_rate: float = 0.0
    csv_only: bool = False
    origin_country: str = "TWN"


@dataclass
class Traveller:
    party: str  # FL passenger, FM crew, DDU transit passenger
    surname: str
    given_names: str
    sex: str
    date_of_birth: date
    nationality: str
    residence: str | None
    doc_type: str
    doc_number: str
    doc_issuer: str
    doc_expiry: date
    embark: str
    debark: str
    pnr: str | None
    seat: str | None
    defects: list[str] = field(default_factory=list)


@dataclass
class Leg:
    dep: str
    arr: str
    dep_local: datetime
    arr_local: datetime


@dataclass
class Flight:
    carrier: str
    number: int
    legs: list[Leg]
    passengers: list[Traveller]
    crew: list[Traveller]
    defects: list[str] = field(default_factory=list)

    @property
    def designator(self) -> str:
        return f"{self.carrier}{self.number:04d}"

    @property
    def flight_key(self) -> str:
        first, last = self.legs[0], self.legs[-1]
        return f"{self.designator}-{first.dep}-{last.arr}-{first.dep_local:%Y%m%d}"


@dataclass(frozen=True)
class GeneratedObject:
    key: str
    data: bytes
    flight_key: str
    syntax: str
    bgm_codes: tuple[str, ...]
    # Travellers a receiver can count in ``data``; a truncated transmission loses the rest.
    travellers: int
    is_resend: bool = False
    is_truncated: bool = False
    source_format: str = "paxlst"
    travellers_cut_off: int = 0


@dataclass
class Corpus:
    options: GeneratorOptions
    flights: list[Flight]
    objects: list[GeneratedObject]

    def summary(self) -> dict[str, object]:
        """Counts of what was generated and planted (no personal data)."""
        roles = Counter(t.party for f in self.flights for t in (*f.passengers, *f.crew))
        traveller_defects = Counter(
            d for f in self.flights for t in (*f.passengers, *f.crew) for d in t.defects
        )
        return {
            "flight_date": self.options.flight_date.isoformat(),
            "flights": len(self.flights),
            "objects": len(self.objects),
            "bytes": sum(len(o.data) for o in self.objects),
            "resends": sum(o.is_resend for o in self.objects),
            "objects_by_format": dict(
                sorted(Counter(o.source_format for o in self.objects).items())
            ),
            "truncated_objects": sum(o.is_truncated for o in self.objects),
            "travellers_by_party": dict(sorted(roles.items())),
            "traveller_defects": dict(sorted(traveller_defects.items())),
            "flight_defects": dict(
                sorted(Counter(d for f in self.flights for d in f.defects).items())
            ),
            "travellers_in_objects": sum(o.travellers for o in self.objects),
            # Sent, but cut off with the end of a truncated transmission: no receiver sees them.
            "travellers_cut_off": sum(o.travellers_cut_off for o in self.objects),
        }


def _weighted(rng: random.Random, table: list[tuple[str, int]]) -> str:
    values = [value for value, _ in table]
    return rng.choices(values, weights=[weight for _, weight in table])[0]


class _Generator:
    def __init__(self, options: GeneratorOptions) -> None:
        self.options = options
        self.rng = random.Random(options.seed)
        self.airports = airports()
        self.interchange_counter = 0
        self.used_numbers: set[tuple[str, int]] = set()
        self.flights_per_carrier: Counter[str] = Counter()
        self.used_docs: set[str] = set()

    # -- schedule -------------------------------------------------------------------------------

    def flights(self) -> list[Flight]:
        flights = [self._flight() for _ in range(self.options.flights)]
        flights.sort(key=lambda f: (f.legs[0].dep_local, f.designator))
        return flights

    def _flight(self) -> Flight:
        rng = self.rng
        routes, progressive = self.routes
        if rng.random() < 0.04 and progressive:
            stops, carriers = rng.choice(progressive)
        else:
            route = rng.choices(routes, weights=[r[3] for r in routes])[0]
            stops, carriers = (route[0], route[1]), route[2]
        carrier = rng.choice(carriers)
        number = self._flight_number(carrier)
        minute_of_day = rng.randrange(6 * 60, 23 * 60 + 30, 5)
        dep_local = datetime.combine(self.options.flight_date, datetime.min.time()) + timedelta(
            minutes=minute_of_day
        )
        legs = []
        for dep, arr in itertools.pairwise(stops):
            arr_local = self._arrival(dep, arr, dep_local)
            legs.append(Leg(dep, arr, dep_local, arr_local))
            dep_local = arr_local + timedelta(minutes=rng.randrange(45, 120, 5))
        seats = (
            rng.randint(250, 330) if carrier in catalog.WIDEBODY_CARRIERS else rng.randint(150, 186)
        )
        booked = int(seats * rng.uniform(0.55, 0.98))
        to_japan = self.airports[legs[-1].arr].country == "JPN" or any(
            self.airports[leg.arr].country == "JPN" for leg in legs
        )
        flight = Flight(carrier, number, legs, [], [])
        embark, debark = legs[0].dep, legs[-1].arr
        flight.passengers = [
            self._traveller("DDU" if rng.random() < 0.02 else "FL", embark, debark, to_japan)
            for _ in range(booked)
        ]
        flight.crew = [
            self._traveller("FM", embark, debark, to_japan, crew_of=carrier)
            for _ in range(rng.randint(6, 14))
        ]
        flight_defect_rate = self.options.flight_defect_rate
        if flight_defect_rate is None:
            flight_defect_rate = self.options.defect_rate * 5
        if rng.random() < flight_defect_rate:
            flight.defects.append(_weighted(rng, FLIGHT_DEFECTS))
        return flight

    @functools.cached_property
    def routes(self) -> tuple[list[tuple[str, str, tuple[str, ...], int]], list[Any]]:
        """Scheduled and progressive routes out of the origin country."""
        origin = self.options.origin_country
        if origin == "TWN":
            return catalog.ROUTES, catalog.PROGRESSIVE_ROUTES
        if origin == "JPN":
            back = [
                (arr, dep, carriers, weight)
                for dep, arr, carriers, weight in catalog.ROUTES
                if self.airports[arr].country == "JPN"
            ]
            return back + catalog.ROUTES_FROM_JAPAN_ELSEWHERE, []
        raise ValueError(f"no routes for origin country {origin!r} (TWN or JPN)")

    def _flight_number(self, carrier: str) -> int:
        # Most carriers' numbers have up to three digits; a corpus with more flights than
        # that for one carrier (a benchmark's million travellers) goes on to four digits.
        used = self.flights_per_carrier[carrier]
        low, high = (2, 999) if used < 800 else (1000, 9999)
        if used >= 800 + 9000:
            raise ValueError(f"more than {used} flights of {carrier} in one day")
        while True:
            number = self.rng.randint(low, high)
            if (carrier, number) not in self.used_numbers:
                self.used_numbers.add((carrier, number))
                self.flights_per_carrier[carrier] += 1
                return number

    def _arrival(self, dep: str, arr: str, dep_local: datetime) -> datetime:
        a, b = self.airports[dep], self.airports[arr]
        minutes = _great_circle_km(a.lat, a.lon, b.lat, b.lon) / 780 * 60 + 35
        minutes = round(minutes / 5) * 5
        dep_utc = dep_local.replace(tzinfo=ZoneInfo(a.tz))
        arr_utc = dep_utc + timedelta(minutes=minutes)
        return arr_utc.astimezone(ZoneInfo(b.tz)).replace(tzinfo=None)

    # -- people ---------------------------------------------------------------------------------

    def _traveller(
        self, party: str, embark: str, debark: str, to_japan: bool, crew_of: str | None = None
    ) -> Traveller:
        rng = self.rng
        if crew_of is not None:
            nationality = {"JL": "JPN", "NH": "JPN", "MM": "JPN", "GK": "JPN"}.get(crew_of, "TWN")
            if rng.random() < 0.15:
                nationality = _weighted(rng, catalog.NATIONALITY_WEIGHTS)
        else:
            weights = catalog.NATIONALITY_WEIGHTS
            if not to_japan:
                weights = [(c, w // 6 if c == "JPN" else w) for c, w in weights]
            nationality = _weighted(rng, weights)
        pool = catalog.NAME_POOL_FOR.get(nationality, nationality)
        surname = rng.choice(catalog.SURNAMES[pool])
        given = rng.choice(catalog.GIVEN_NAMES[pool])
        departure = self.options.flight_date
        age_years = self._age(crew=crew_of is not None)
        dob = departure - timedelta(days=int(age_years * 365.25) + rng.randint(0, 364))
        issuer = catalog.ISSUER_FOR_STATELESS if nationality == "XXA" else nationality
        validity_years = 5 if age_years < 20 else 10
        issued = departure - timedelta(days=rng.randint(0, validity_years * 365 - 1))
        expiry = issued + timedelta(days=validity_years * 365)
        traveller = Traveller(
            party=party,
            surname=surname,
            given_names=given,
            sex=rng.choice("MF") if rng.random() > 0.002 else "X",
            date_of_birth=dob,
            nationality=nationality,
            residence=nationality if nationality != "XXA" and rng.random() < 0.6 else None,
            doc_type="P",
            doc_number=self._doc_number(nationality),
            # German documents carry D as issuing state; half the airlines pass it through.
            doc_issuer="D" if issuer == "DEU" and rng.random() < 0.5 else issuer,
            doc_expiry=expiry,
            embark=embark,
            debark=debark,
            pnr="".join(rng.choices("ABCDEFGHJKLMNPQRSTUVWXYZ23456789", k=6))
            if party != "FM"
            else None,
            seat=f"{rng.randint(1, 60)}{rng.choice('ABCDEFGHJK')}" if party != "FM" else None,
        )
        if rng.random() < self.options.defect_rate:
            self._plant_defect(traveller, _weighted(rng, TRAVELLER_DEFECTS))
        return traveller

    def _age(self, crew: bool) -> float:
        if crew:
            return self.rng.uniform(21, 60)
        band = self.rng.choices(
            [(0, 12), (12, 18), (18, 31), (31, 46), (46, 61), (61, 76), (76, 96)],
            weights=[8, 6, 25, 28, 20, 10, 3],
        )[0]
        return self.rng.uniform(*band)

    def _doc_number(self, nationality: str) -> str:
        pattern = catalog.PASSPORT_FORMATS[nationality]
        while True:
            number = "".join(self._format_char(c) for c in pattern)
            if number not in self.used_docs:
                self.used_docs.add(number)
                return number

    def _format_char(self, spec: str) -> str:
        if spec == "D":
            return self.rng.choice("0123456789")
        if spec == "L":
            return self.rng.choice("ABCDEFGHJKLMNPRSTUVWXYZ")
        if spec == "A":
            return self.rng.choice("0123456789CFGHJKLMNPRTVWXYZ")
        return spec

    def _plant_defect(self, traveller: Traveller, defect: str) -> None:
        traveller.defects.append(defect)
        if defect == "expired_doc":
            traveller.doc_expiry = self.options.flight_date - timedelta(
                days=self.rng.randint(1, 900)
            )
        elif defect == "bad_sex_code":
            traveller.sex = "Q"
        elif defect == "bad_nationality":
            traveller.nationality = "ZZQ"

    # -- messages -------------------------------------------------------------------------------

    def objects(self, flights: list[Flight]) -> list[GeneratedObject]:
        objects: list[GeneratedObject] = []
        for flight in flights:
            # No draw at rate 0, so corpora without exports keep their bytes for a seed.
            exported = self.options.csv_rate > 0 and self.rng.random() < self.options.csv_rate
            if not (exported and self.options.csv_only):
                objects.extend(self._flight_objects(flight))
            if exported:
                objects.append(self._airport_export(flight))
        resends = [
            self._resend(obj)
            for obj in objects
            if not obj.is_truncated and self.rng.random() < self.options.resend_rate
        ]
        return objects + resends

    def _flight_objects(self, flight: Flight) -> list[GeneratedObject]:
        rng = self.rng
        size = self.options.part_size
        parts = [flight.passengers[i : i + size] for i in range(0, len(flight.passengers), size)]
        parts = parts or [[]]
        sent_at = flight.legs[0].dep_local - timedelta(minutes=rng.randrange(40, 120, 5))
        car = f"{flight.designator}/{sent_at:%y%m%d}/{sent_at:%H%M}"
        messages = [
            self._passenger_message(flight, part, index + 1, len(parts), car)
            for index, part in enumerate(parts)
        ]
        crew = self._crew_message(flight, f"{car}C")
        if "missing_final_part" in flight.defects and len(messages) > 1:
            messages.pop()
        crew_alongside = rng.random() < 0.5
        groups: list[list[tuple[list[Segment], str, int]]] = [[m] for m in messages]
        if crew_alongside:
            groups[-1].append(crew)
        else:
            groups.append([crew])
        syntax = _weighted_syntax(rng)
        truncate_at = rng.randrange(len(groups)) if "truncated" in flight.defects else None
        out = []
        for index, group in enumerate(groups):
            out.append(
                self._interchange(
                    flight, group, sent_at + timedelta(seconds=index), syntax, index == truncate_at
                )
            )
        return out

    def _passenger_message(
        self, flight: Flight, part: list[Traveller], number: int, total: int, car: str
    ) -> tuple[list[Segment], str, int]:
        count = len(flight.passengers)
        if "cnt_mismatch" in flight.defects:
            count += self.rng.choice([-3, -2, -1, 1, 2, 5])
        indicator = "F" if number == total else "C"
        body: list[Segment] = [
            ["BGM", "745"],
            ["RFF", ["TN", f"{flight.designator}{flight.legs[0].dep_local:%y%m%d}", "", "", "1"]],
        ]
        body += self._reporting_party(flight) + self._flight_segments(flight)
        for traveller in part:
            body += self._person_segments(traveller)
        body.append(["CNT", ["42", str(count)]])
        return body, f"{car}+{number:02d}:{indicator}", len(part)

    def _crew_message(self, flight: Flight, car: str) -> tuple[list[Segment], str, int]:
        body: list[Segment] = [["BGM", "250"]]
        body += self._reporting_party(flight) + self._flight_segments(flight)
        for traveller in flight.crew:
            body += self._person_segments(traveller)
        body.append(["CNT", ["41", str(len(flight.crew))]])
        return body, f"{car}+01:F", len(flight.crew)

    def _reporting_party(self, flight: Flight) -> list[Segment]:
        name = catalog.CARRIER_NAMES.get(flight.carrier, flight.carrier)
        phone = f"886 2 {self.rng.randint(2000, 2999)} {self.rng.randint(1000, 9999)}"
        return [["NAD", "MS", "", "", f"{name} API CENTRE"], ["COM", [phone, "TE"]]]

    def _flight_segments(self, flight: Flight) -> list[Segment]:
        segments: list[Segment] = []
        progressive = len(flight.legs) > 1
        for leg in flight.legs:
            segments.append(
                ["TDT", "20", f"{flight.carrier}{flight.number}", "", "", flight.carrier]
            )
            segments.append(["LOC", "92" if progressive else "125", leg.dep])
            segments.append(["DTM", ["189", f"{leg.dep_local:%y%m%d%H%M}", "201"]])
            segments.append(["LOC", "92" if progressive else "87", leg.arr])
            segments.append(["DTM", ["232", f"{leg.arr_local:%y%m%d%H%M}", "201"]])
        return segments

    def _person_segments(self, t: Traveller) -> list[Segment]:
        rng = self.rng
        dob = f"{t.date_of_birth:%y%m%d}"
        if "impossible_dob" in t.defects:
            dob = (
                dob[:2] + rng.choice(["13", "00"]) + dob[4:]
                if rng.random() < 0.5
                else dob[:2] + "0230"
            )
        segments: list[Segment] = [
            ["NAD", t.party, "", "", [t.surname, *t.given_names.split(" ", 1)]],
            ["ATT", "2", "", t.sex],
            ["DTM", ["329", dob]],
            ["LOC", "178", t.embark],
            ["LOC", "179", t.debark],
        ]
        if t.residence:
            segments.append(["LOC", "174", t.residence])
        segments.append(["NAT", "2", t.nationality])
        if t.pnr:
            segments.append(["RFF", ["AVF", t.pnr]])
        if t.seat:
            segments.append(["RFF", ["SEA", t.seat]])
        if "missing_doc" in t.defects:
            return segments
        number = "" if "empty_doc_number" in t.defects else t.doc_number
        doc_code: str | list[str] = [t.doc_type, "110", "111"] if rng.random() < 0.3 else t.doc_type
        segments.append(["DOC", doc_code, number])
        segments.append(["DTM", ["36", f"{t.doc_expiry:%y%m%d}"]])
        segments.append(["LOC", "91", t.doc_issuer])
        return segments

    def _interchange(
        self,
        flight: Flight,
        messages: list[tuple[list[Segment], str, int]],
        sent_at: datetime,
        syntax: Syntax,
        truncate: bool,
        interchange_ref: str | None = None,
    ) -> GeneratedObject:
        rng = self.rng
        self.interchange_counter += 1
        icref = interchange_ref or f"{self.options.seed % 1000:03d}{self.interchange_counter:07d}"
        stamp = f"{sent_at:%y%m%d}:{sent_at:%H%M}"
        sender = f"{flight.carrier}APIS"
        segments: list[Segment] = [
            [
                "UNB",
                ["UNOA", "4"],
                [sender, "ZZ"],
                [f"{self.options.origin_country}API", "ZZ"],
                stamp.split(":"),
                icref,
                "",
                "APIS",
            ]
        ]
        with_group = rng.random() < 0.5
        if with_group:
            name = catalog.CARRIER_NAMES.get(flight.carrier, flight.carrier)
            segments.append(
                [
                    "UNG",
                    "PAXLST",
                    [name, "ZZ"],
                    [f"{self.options.origin_country}API", "ZZ"],
                    stamp.split(":"),
                    "1",
                    "UN",
                    ["D", "05B"],
                ]
            )
        travellers = 0
        for index, (body, car_and_part, people) in enumerate(messages):
            ref = f"{icref}{index + 1:02d}"
            car, _, part = car_and_part.partition("+")
            unh: Segment = ["UNH", ref, ["PAXLST", "D", "05B", "UN", "IATA"], car]
            if part and not (part == "01:F" and rng.random() < 0.3):
                unh.append(part.split(":"))
            count = len(body) + 2
            if "wrong_unt_count" in flight.defects and body[0][1] == "745":
                count += rng.choice([-2, -1, 1, 3])
            segments += [unh, *body, ["UNT", str(count), ref]]
            travellers += people
        if with_group:
            segments.append(["UNE", str(len(messages)), "1"])
        segments.append(["UNZ", "1" if with_group else str(len(messages)), icref])
        text = self._render(segments, syntax)
        data = text.encode("latin-1" if not text.isascii() and rng.random() < 0.3 else "utf-8")
        if truncate:
            data = data[: int(len(data) * rng.uniform(0.4, 0.9))]
        key = (
            f"{self.options.prefix}/{self.options.flight_date:%Y-%m-%d}/{flight.carrier}/"
            f"{flight.designator}_{flight.legs[0].dep_local:%Y%m%d%H%M}_{icref}.edi"
        )
        left = _travellers_left(data, syntax) if truncate else travellers
        return GeneratedObject(
            key=key,
            data=data,
            flight_key=flight.flight_key,
            syntax=syntax.name,
            bgm_codes=tuple(str(body[0][1]) for body, _, _ in messages),
            travellers=left,
            is_truncated=truncate,
            travellers_cut_off=travellers - left,
        )

    def _airport_export(self, flight: Flight) -> GeneratedObject:
        """The departure airport's CSV export of the flight's passengers (no crew)."""
        rng = self.rng
        columns = list(CSV_COLUMNS)
        if rng.random() < 0.2:
            # Some airports leave the optional columns out, some order columns their own way.
            columns = [c for c in columns if c not in ("pnr_locator", "seat")]
        if rng.random() < 0.1:
            rng.shuffle(columns)
        # The export comes from the airport of the leg that leaves the origin country.
        origin = self.options.origin_country
        leg = [leg for leg in flight.legs if self.airports[leg.dep].country == origin][-1]
        lines = []
        for traveller in flight.passengers:
            values = self._csv_values(flight, traveller, leg)
            lines.append([values[c] for c in columns])
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator=rng.choice(["\n", "\r\n"]))
        writer.writerow(columns)
        writer.writerows(lines)
        data = buffer.getvalue().encode("utf-8")
        truncated = "truncated" in flight.defects
        if truncated:
            # A transfer cut off mid-way: past the header, usually inside a line.
            header_end = data.index(b"\n") + 1
            data = data[: header_end + int((len(data) - header_end) * rng.uniform(0.4, 0.9))]
        self.interchange_counter += 1
        suffix = ".txt" if rng.random() < 0.3 else ".csv"
        key = (
            f"{self.options.prefix}/{self.options.flight_date:%Y-%m-%d}/airport-{leg.dep}/"
            f"{flight.designator}_{leg.dep_local:%Y%m%d%H%M}_DCS{self.interchange_counter:07d}"
            f"{suffix}"
        )
        return GeneratedObject(
            key=key,
            data=data,
            flight_key=flight.flight_key,
            syntax="airport_csv",
            bgm_codes=("745",),
            travellers=len(lines) if not truncated else _csv_data_lines(data),
            is_truncated=truncated,
            source_format="airport_csv",
            travellers_cut_off=len(lines) - _csv_data_lines(data) if truncated else 0,
        )

    def _csv_values(self, flight: Flight, t: Traveller, leg: Leg) -> dict[str, str]:
        dob = f"{t.date_of_birth:%Y-%m-%d}"
        if "impossible_dob" in t.defects:
            dob = dob[:5] + self.rng.choice(["13-01", "02-30", "00-10"])
        has_doc = "missing_doc" not in t.defects
        return {
            "carrier_code": flight.carrier,
            "flight_number": str(flight.number),
            "dep_airport": leg.dep,
            "arr_airport": leg.arr,
            "sched_departure_local": f"{leg.dep_local:%Y-%m-%d %H:%M}",
            "sched_arrival_local": f"{leg.arr_local:%Y-%m-%d %H:%M}",
            "traveller_type": {"FL": "PASSENGER", "DDU": "TRANSIT"}.get(t.party, "CREW"),
            "surname": t.surname,
            "given_names": t.given_names,
            "sex": t.sex,
            "date_of_birth": dob,
            "nationality": t.nationality,
            "residence_country": t.residence or "",
            "embark_airport": t.embark,
            "debark_airport": t.debark,
            "doc_type": t.doc_type if has_doc else "",
            "doc_number": t.doc_number if has_doc and "empty_doc_number" not in t.defects else "",
            "doc_issuing_state": t.doc_issuer if has_doc else "",
            "doc_expiry_date": f"{t.doc_expiry:%Y-%m-%d}" if has_doc else "",
            "pnr_locator": t.pnr or "",
            "seat": t.seat or "",
        }

    def _resend(self, original: GeneratedObject) -> GeneratedObject:
        """The same messages again under a new interchange and message reference."""
        if original.source_format == "airport_csv":
            # An export sent twice is the same bytes under a new name.
            self.interchange_counter += 1
            stem, _, suffix = original.key.rpartition("_DCS")
            key = f"{stem}_DCS{self.interchange_counter:07d}{suffix[-4:]}"
            return replace(original, key=key, is_resend=True)
        self.interchange_counter += 1
        new_ref = f"{self.options.seed % 1000:03d}{self.interchange_counter:07d}"
        old_ref = original.key.rsplit("_", 1)[1].removesuffix(".edi")
        # Envelope references are unique digit strings, so a textual swap touches only them.
        data = original.data.replace(old_ref.encode(), new_ref.encode())
        key = original.key.replace(f"_{old_ref}.edi", f"_{new_ref}.edi")
        return GeneratedObject(
            key=key,
            data=data,
            flight_key=original.flight_key,
            syntax=original.syntax,
            bgm_codes=original.bgm_codes,
            travellers=original.travellers,
            is_resend=True,
        )

    def _render(self, segments: list[Segment], syntax: Syntax) -> str:
        specials = {syntax.release, syntax.component, syntax.element, syntax.terminator}

        def escape(value: str) -> str:
            if not any(ch in value for ch in specials):
                return value
            return "".join(syntax.release + ch if ch in specials else ch for ch in value)

        stray_spaces = self.rng.random() < 0.1
        lines = []
        for segment in segments:
            elements = []
            for element in segment:
                if isinstance(element, list):
                    elements.append(syntax.component.join(escape(c) for c in element))
                else:
                    elements.append(escape(element))
            text = syntax.element.join(elements)
            if stray_spaces and segment[0] == "DTM" and self.rng.random() < 0.2:
                text = text.replace(syntax.component, syntax.component + " ", 1)
            lines.append(syntax.indent + text + syntax.terminator + syntax.line_end)
        head = syntax.una + syntax.line_end if syntax.has_una else ""
        return head + "".join(lines)


def _travellers_left(data: bytes, syntax: Syntax) -> int:
    """Travellers whose NAD segment a truncated interchange still holds, cut off after its
    qualifier or not: what the parser counts for an unreadable message."""
    element, terminator = re.escape(syntax.element), re.escape(syntax.terminator)
    nad = re.compile(f"NAD{element}(?:{'|'.join(TRAVELLER_PARTIES)})(?={element}|{terminator}|$)")
    # Latin-1 maps every byte to one character, so ASCII patterns match UTF-8 data too.
    return len(nad.findall(data.decode("latin-1")))


def _csv_data_lines(data: bytes) -> int:
    """Travellers in an export as sent: its lines after the header, a cut-off one included."""
    body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    return len([line for line in body.split(b"\n") if line.strip()])


def _weighted_syntax(rng: random.Random) -> Syntax:
    syntaxes = [syntax for syntax, _ in SYNTAXES]
    return rng.choices(syntaxes, weights=[weight for _, weight in SYNTAXES])[0]


def _great_circle_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371 * math.asin(math.sqrt(h))


def generate_day(options: GeneratorOptions) -> Corpus:
    """Generate a day of traffic out of Taiwan as PAXLST interchanges."""
    generator = _Generator(options)
    flights = generator.flights()
    return Corpus(options=options, flights=flights, objects=generator.objects(flights))
