"""Counts over parse results, for people and reports. No personal data leaves here."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow as pa

from manifest_exchange.paxlst.parser import ParseResult


@dataclass
class ParseSummary:
    objects: int = 0
    bytes: int = 0
    unreadable_objects: int = 0
    messages: int = 0
    unreadable_messages: int = 0
    persons: int = 0
    persons_by_role: Counter[str] = field(default_factory=Counter)
    errors_by_code: Counter[str] = field(default_factory=Counter)
    flights: set[str] = field(default_factory=set)
    # Wall time of reading and parsing together: the parser prepares one batch while the
    # sources are still being read, so the two cannot be told apart.
    wall_seconds: float = 0.0

    def add(self, result: ParseResult) -> None:
        """Fold one batch's result into the summary."""
        self.objects += result.objects.num_rows
        self.bytes += sum(result.objects.column("bytes").to_pylist())
        self.unreadable_objects += _count_set(result.objects.column("error_code"))
        self.messages += result.messages.num_rows
        self.unreadable_messages += _count_set(result.messages.column("error_code"))
        self.persons += result.persons.num_rows
        self.persons_by_role.update(result.persons.column("role").to_pylist())
        self.errors_by_code.update(result.errors.column("error_code").to_pylist())
        columns = ("carrier_code", "flight_number", "dep_airport", "arr_airport", "flight_date")
        rows = result.messages.select(list(columns)).to_pylist()
        self.flights.update(
            f"{r['carrier_code']}{r['flight_number']}-{r['dep_airport']}-{r['arr_airport']}-"
            f"{r['flight_date']:%Y%m%d}"
            for r in rows
            if all(r[c] is not None for c in columns)
        )

    def as_dict(self) -> dict[str, object]:
        return {
            "objects": self.objects,
            "bytes": self.bytes,
            "unreadable_objects": self.unreadable_objects,
            "messages": self.messages,
            "unreadable_messages": self.unreadable_messages,
            "flights": len(self.flights),
            "persons": self.persons,
            "persons_by_role": dict(sorted(self.persons_by_role.items())),
            "errors_by_code": dict(sorted(self.errors_by_code.items())),
            "read_and_parse_seconds": round(self.wall_seconds, 3),
            "persons_per_second": (
                round(self.persons / self.wall_seconds) if self.wall_seconds else None
            ),
        }


def _count_set(column: pa.ChunkedArray) -> int:
    """How many values in ``column`` are not null."""
    return len(column) - int(column.null_count)
