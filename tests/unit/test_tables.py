from __future__ import annotations

import random

import duckdb
import pyarrow as pa

from manifest_exchange.tables import sorted_by


def _random_table(seed: int, rows: int = 500) -> pa.Table:
    rng = random.Random(seed)
    return pa.table(
        {
            "airport": [rng.choice(["NRT", "KIX", "HND", None]) for _ in range(rows)],
            "day": [rng.choice([3, 1, 2, None]) for _ in range(rows)],
            "object_id": pa.array([rng.randint(0, 5) for _ in range(rows)], pa.int32()),
            "position": [rng.randint(1, 10_000) for _ in range(rows)],
            "payload": [rng.random() for _ in range(rows)],
        }
    )


def test_sorts_as_duckdb_order_by_does() -> None:
    """Ascending, nulls last, several keys of strings and integers."""
    for seed in range(3):
        table = _random_table(seed)
        keys = ["airport", "day", "object_id", "position", "payload"]
        with duckdb.connect() as connection:
            connection.register("unsorted", table)
            expected = connection.execute(
                f"select * from unsorted order by {', '.join(keys)}"  # noqa: S608 - fixed names
            ).to_arrow_table()
        assert sorted_by(table, keys).equals(expected)


def test_a_table_already_in_order_comes_back_untouched() -> None:
    table = sorted_by(_random_table(1), ["object_id", "position"])
    assert sorted_by(table, ["object_id", "position"]) is table
    # Equal first keys are ordered by the next one: a fall there is out of order.
    swapped = table.take([1, 0, *range(2, table.num_rows)])
    if swapped.column("position")[0].as_py() != swapped.column("position")[1].as_py():
        assert sorted_by(swapped, ["object_id", "position"]).equals(table)


def test_integer_keys_with_ties_are_checked_key_by_key() -> None:
    table = pa.table({"object_id": [1, 1, 2, 2], "position": [5, 7, 1, 3]})
    assert sorted_by(table, ["object_id", "position"]) is table
    shuffled = pa.table({"object_id": [1, 1, 2, 2], "position": [7, 5, 1, 3]})
    assert sorted_by(shuffled, ["object_id", "position"]).equals(table)
