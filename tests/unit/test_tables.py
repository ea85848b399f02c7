from __future__ import annotations

import random

import duckdb
import pyarrow as pa
import pytest

from manifest_exchange.tables import sorted_by, with_columns_of


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


def test_added_columns_go_beside_the_rows_they_belong_to() -> None:
    base = pa.table({"person_id": [0, 1, 2, 3], "name": ["a", "b", "c", "d"], "kept": [1, 2, 3, 4]})
    added = pa.table({"person_id": [3, 1], "kept": [40, 20], "outcome": ["x", "y"]})
    joined = with_columns_of(base, added, "person_id")
    # Rows follow ``added``; a column both have is replaced where it stands, new ones appended.
    assert joined.column_names == ["person_id", "name", "kept", "outcome"]
    assert joined.to_pylist() == [
        {"person_id": 3, "name": "d", "kept": 40, "outcome": "x"},
        {"person_id": 1, "name": "b", "kept": 20, "outcome": "y"},
    ]


def test_rows_already_aligned_keep_the_base_columns_uncopied() -> None:
    base = pa.table({"person_id": [0, 1, 2], "name": ["a", "b", "c"]})
    added = pa.table({"person_id": [0, 1, 2], "flag": [True, False, True]})
    joined = with_columns_of(base, added, "person_id")

    def data_address(table: pa.Table) -> int:
        return int(table.column("name").chunk(0).buffers()[2].address)

    assert data_address(joined) == data_address(base)
    assert joined.column("flag").to_pylist() == [True, False, True]


def test_a_key_the_base_lacks_is_refused() -> None:
    base = pa.table({"person_id": [0, 1], "name": ["a", "b"]})
    with pytest.raises(ValueError, match="1 rows have a person_id the base table lacks"):
        with_columns_of(base, pa.table({"person_id": [1, 7], "flag": [True, False]}), "person_id")
