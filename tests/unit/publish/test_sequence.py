from __future__ import annotations

from manifest_exchange.publish.partner import DropCheck, check_sequence
from manifest_exchange.publish.sequence import ChainLink, Latest, next_link


def _latest(sequence: int, drop_id: str, sha256: str = "s") -> Latest:
    return Latest(sequence, drop_id, sha256, "2026-12-01T00:00:00+00:00", "p", "ps")


def _chain(count: int) -> list[DropCheck]:
    """Drops d1..dN, each linked to the one before by id and manifest sha256."""
    return [
        DropCheck(
            f"d{n}",
            sequence=n,
            previous_drop_id=None if n == 1 else f"d{n - 1}",
            previous_manifest_sha256=None if n == 1 else f"sha{n - 1}",
            manifest_sha256=f"sha{n}",
        )
        for n in range(1, count + 1)
    ]


def test_the_first_drop_starts_the_sequence_and_each_next_one_links_to_the_latest() -> None:
    assert next_link(None, "d1") == ChainLink(1, None, None)
    assert next_link(_latest(4, "d4", "sha4"), "d5") == ChainLink(5, "d4", "sha4")


def test_a_drop_the_pointer_already_names_keeps_its_own_link() -> None:
    # A retried batch is rebuilt under its own id after its drop was completed.
    assert next_link(_latest(4, "d4", "sha4"), "d4") == ChainLink(4, "p", "ps")


def test_an_intact_chain_with_its_pointer_is_ok() -> None:
    result = check_sequence(_chain(4), _latest(4, "d4", "sha4"))
    assert (result.first, result.last, result.gaps, result.problems) == (1, 4, [], [])


def test_a_missing_drop_is_a_gap() -> None:
    drops = [d for d in _chain(5) if d.sequence != 3]
    result = check_sequence(drops, _latest(5, "d5", "sha5"))
    assert result.gaps == [3]


def test_missing_newest_drops_are_a_gap_the_pointer_shows() -> None:
    result = check_sequence(_chain(3), _latest(5, "d5", "sha5"))
    assert result.gaps == [4, 5]
    assert any("_latest.json names sequence 5" in p for p in result.problems)


def test_a_changed_manifest_breaks_the_link_of_the_drop_after_it() -> None:
    drops = _chain(4)
    drops[1].manifest_sha256 = "rewritten"
    result = check_sequence(drops, _latest(4, "d4", "sha4"))
    assert result.problems == [
        "drop d2 (sequence 2) changed after drop d3 chained to it: its manifest's sha256 differs"
    ]


def test_a_changed_newest_drop_is_caught_by_the_pointer() -> None:
    drops = _chain(3)
    drops[2].manifest_sha256 = "rewritten"
    result = check_sequence(drops, _latest(3, "d3", "sha3"))
    assert len(result.problems) == 1
    assert "d3 (sequence 3) changed" in result.problems[0]


def test_a_drop_pointing_at_the_wrong_predecessor_is_a_broken_chain() -> None:
    drops = _chain(3)
    drops[2].previous_drop_id = "elsewhere"
    result = check_sequence(drops, _latest(3, "d3", "sha3"))
    assert result.problems[0].startswith("broken chain: drop d3 (sequence 3)")


def test_two_drops_with_one_number_are_reported() -> None:
    drops = [
        *_chain(2),
        DropCheck(
            "d2b",
            sequence=2,
            previous_drop_id="d1",
            previous_manifest_sha256="sha1",
            manifest_sha256="x",
        ),
    ]
    result = check_sequence(drops, _latest(2, "d2", "sha2"))
    assert "sequence 2 is held by more than one drop: d2, d2b" in result.problems


def test_drops_from_before_sequencing_are_counted_not_reported() -> None:
    legacy = [DropCheck("a0"), DropCheck("a1")]
    result = check_sequence([*legacy, *_chain(2)], _latest(2, "d2", "sha2"))
    assert result.unsequenced == 2
    assert result.problems == []


def test_a_recent_part_checked_with_since_need_not_start_at_one() -> None:
    result = check_sequence(_chain(6)[3:], _latest(6, "d6", "sha6"), from_first=True)
    assert (result.first, result.gaps, result.problems) == (4, [], [])
