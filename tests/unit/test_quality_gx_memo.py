"""The memo of expectation configurations changes nothing GX reports, only how often it derives."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import great_expectations as gx
import pyarrow as pa
import pytest

from manifest_exchange.quality import gx_memo
from manifest_exchange.quality.suites import load_suite
from manifest_exchange.quality.validator import SuiteResult, Validator


@pytest.fixture(scope="module")
def validator(tmp_path_factory: pytest.TempPathFactory) -> Validator:
    return Validator(tmp_path_factory.mktemp("gx"), data_docs=False)


def _travellers_failing_most_checks() -> pa.Table:
    return pa.table(
        {
            "person_id": [1, 2, 3, 4],
            "has_surname": [True, False, True, True],
            "sex": ["M", "Q", "X", "F"],
            "age_years": [30.0, None, -0.5, 40.0],
            "nationality": ["TWN", "ZZQ", "XXA", "DEU"],
            "doc_type": ["P", None, "Z", "P"],
            "doc_number_shape": ["A99999999", "99-9", None, "AA9999999"],
            "doc_issuing_state": ["TWN", "QQQ", "TWN", "DEU"],
            "doc_valid_days_after_departure": [900, -1, 12, None],
            "list_key": ["f1", "f1", "f1", "f2"],
            "doc_ordinal": [1, 1, 3, 1],
            "has_non_unoa_chars": [False, True, False, False],
            "is_doc_expiry_plausible": [True, False, None, True],
            "oversized_field": [None, "surname", None, "given_names"],
        }
    )


def _gx_results(result: SuiteResult) -> list[tuple[Any, ...]]:
    (_, validation), *_ = result.documents
    return [
        (r.expectation_config.type, r.expectation_config.kwargs, r.success, r.result)
        for r in validation.results
    ]


def test_the_memo_is_in_place_for_the_pinned_gx(validator: Validator) -> None:
    assert gx.__version__.startswith(gx_memo.CHECKED_GX_VERSIONS)
    assert validator.memoises_configurations


def test_a_validation_reports_the_same_with_and_without_the_memo(
    validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    suite, table = load_suite("paxlst_travellers"), _travellers_failing_most_checks()
    memoised = validator.validate(suite, table)
    monkeypatch.setattr(gx_memo, "memoised_configurations", nullcontext)
    derived_each_time = validator.validate(suite, table)

    assert memoised.issues.num_rows >= 8
    assert memoised.issues.equals(derived_each_time.issues)
    assert _gx_results(memoised) == _gx_results(derived_each_time)
    assert memoised.failed_checks == derived_each_time.failed_checks


def test_gx_does_not_change_an_expectation_after_its_configuration_was_kept(
    validator: Validator, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept: list[tuple[Any, Any]] = []
    memoise = gx_memo.memoised_configurations

    @contextmanager
    def recording() -> Iterator[None]:
        with memoise():
            yield
            assert gx_memo._memo is not None
            kept.extend(v for v in gx_memo._memo.values() if v[1] is not None)

    monkeypatch.setattr(gx_memo, "memoised_configurations", recording)
    validator.validate(load_suite("paxlst_travellers"), _travellers_failing_most_checks())
    # Every configuration the memo kept is what GX derives for its expectation at the end:
    # neither the expectation nor the kept configuration was changed after it was kept.
    assert len(kept) >= len(load_suite("paxlst_travellers").definition["expectations"])
    for expectation, configuration in kept:
        assert gx_memo._derive(expectation).to_json_dict() == configuration.to_json_dict()


def test_configurations_are_kept_only_inside_the_block_and_on_its_thread() -> None:
    assert gx_memo.install()
    expectation = gx.expectations.ExpectColumnValuesToBeInSet(column="sex", value_set=["M", "F"])
    assert expectation.configuration is not expectation.configuration
    on_other_thread: list[Any] = []
    with gx_memo.memoised_configurations():
        # The first read is derived and not kept; the second is kept.
        assert expectation.configuration is not expectation.configuration
        first = expectation.configuration
        assert first is expectation.configuration
        assert first.to_json_dict() == gx_memo._derive(expectation).to_json_dict()
        other = threading.Thread(target=lambda: on_other_thread.append(expectation.configuration))
        other.start()
        other.join()
        with pytest.raises(RuntimeError, match="do not nest"), gx_memo.memoised_configurations():
            pass
    assert on_other_thread[0] is not first
    assert on_other_thread[0].to_json_dict() == first.to_json_dict()
    assert expectation.configuration is not first


def test_an_unchecked_gx_version_is_left_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(gx_memo, "CHECKED_GX_VERSIONS", ("0.18.",))
    assert not gx_memo.install()
    assert not Validator(tmp_path, data_docs=False).memoises_configurations
