"""Which store errors count as transient (retried) and which do not."""

from __future__ import annotations

import botocore.exceptions
import pytest

from manifest_exchange.storage.s3 import _transient_aws_error, is_transient_error


def _client_error(code: str, status: int) -> botocore.exceptions.ClientError:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (_client_error("SlowDown", 503), True),
        (_client_error("InternalError", 500), True),
        (_client_error("RequestTimeout", 400), True),
        (_client_error("AccessDenied", 403), False),
        (_client_error("NoSuchKey", 404), False),
        (_client_error("PreconditionFailed", 412), False),
        (botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), True),
        (botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), True),
        (ConnectionResetError(), True),
        (ValueError("bad manifest"), False),
        (KeyError("doc_number"), False),
    ],
)
def test_transient_errors_are_told_apart(error: BaseException, transient: bool) -> None:
    assert is_transient_error(error) is transient


def test_a_transient_cause_makes_a_wrapped_error_transient() -> None:
    wrapped = RuntimeError("could not publish")
    wrapped.__cause__ = _client_error("ServiceUnavailable", 503)

    assert is_transient_error(wrapped)
    assert not is_transient_error(RuntimeError("could not publish"))


@pytest.mark.parametrize(
    ("message", "name"),
    [
        ("AWS Error SLOW_DOWN during GetObject operation: Please reduce", "SLOW_DOWN"),
        ("AWS Error UNKNOWN (HTTP status 503) during HeadObject operation", "UNKNOWN"),
        (
            "AWS Error INTERNAL_FAILURE during GetObject operation: Failed to flush",
            "INTERNAL_FAILURE",
        ),
        (
            "AWS Error NETWORK_CONNECTION during HeadObject operation: curlCode: 7",
            "NETWORK_CONNECTION",
        ),
        ("AWS Error ACCESS_DENIED during HeadObject operation: No response body.", None),
        ("AWS Error UNKNOWN (HTTP status 404) during HeadObject operation", None),
        ("Expected an S3 object path of the form 'bucket/key...'", None),
    ],
)
def test_arrow_errors_worth_retrying_are_told_by_name_or_status(
    message: str, name: str | None
) -> None:
    assert _transient_aws_error(message) == name
