"""The run options every exchange flow takes."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from manifest_exchange.orchestration.parameters import RunOptions


def test_defaults_check_batches_in_process_in_ten_megabyte_batches() -> None:
    options = RunOptions()

    assert options.runner == "threads"
    assert options.batch_bytes == 10 * 1024 * 1024
    assert options.s3_credentials_block is options.hmac_key_block is None


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"runner": "spark"}, "'threads' or 'dask'"),
        ({"batch_mb": 0}, "greater than 0"),
        ({"batch_size": 5}, "Extra inputs are not permitted"),
    ],
)
def test_bad_options_are_refused_with_the_reason(given: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        RunOptions.model_validate(given)


def test_a_deployment_dict_becomes_options() -> None:
    options = RunOptions.model_validate(
        {"runner": "dask", "dask_address": "tcp://scheduler:8786", "batch_mb": 2.5}
    )

    assert options.batch_bytes == int(2.5 * 1024 * 1024)
    assert options.dask_address == "tcp://scheduler:8786"
