from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from manifest_exchange.ingest.landings import (
    ChangeLogStream,
    Landing,
    LandingFilter,
    Linger,
    landings_from_s3_notification,
    landings_in_filer_event,
)
from manifest_exchange.storage.s3 import S3Location

SOURCE = S3Location("airport-manifests", "paxlst")


def _entry(
    name: str, *, directory: bool = False, md5: str = "bWQ1", size: int = 10
) -> dict[str, Any]:
    return {
        "name": name,
        "isDirectory": directory,
        "chunks": [{"eTag": "chunk-tag"}],
        "attributes": {"fileSize": str(size), "md5": md5},
    }


def _event(directory: str, new: dict[str, Any] | None, ts: int = 7, **extra: Any) -> dict[str, Any]:
    return {
        "directory": directory,
        "eventNotification": {"oldEntry": None, "newEntry": new, **extra},
        "tsNs": str(ts),
    }


def test_a_new_object_under_the_prefix_is_a_landing() -> None:
    event = _event("/buckets/airport-manifests/paxlst/2026-12-01/CI", _entry("a.edi"), ts=42)
    assert list(landings_in_filer_event(event, SOURCE)) == [
        Landing("airport-manifests", "paxlst/2026-12-01/CI/a.edi", "6d6435", 10, 42)
    ]


def test_folders_deletions_staging_other_buckets_and_prefixes_are_not() -> None:
    events = [
        _event("/buckets/airport-manifests/paxlst", _entry("2026-12-01", directory=True)),
        _event("/buckets/airport-manifests/paxlst/2026-12-01", None),
        _event("/buckets/airport-manifests/.uploads/0a1b", _entry("0001.part")),
        _event("/buckets/exchange-state/paxlst", _entry("a.edi")),
        _event("/buckets/airport-manifests/other", _entry("a.edi")),
        _event("/buckets/airport-manifests", _entry("paxlst-not-a-folder.edi")),
    ]
    assert [x for e in events for x in landings_in_filer_event(e, SOURCE)] == []


def test_nested_events_and_a_rename_into_the_prefix_are_read() -> None:
    outer = _event("/buckets/airport-manifests/paxlst", _entry("2026-12-01", directory=True), ts=1)
    outer["events"] = [_event("/buckets/airport-manifests/paxlst/d", _entry("b.edi"), ts=2)]
    renamed = _event(
        "/buckets/airport-manifests/incoming",
        _entry("c.edi"),
        ts=3,
        newParentPath="/buckets/airport-manifests/paxlst/d",
    )
    keys = [x.key for e in (outer, renamed) for x in landings_in_filer_event(e, SOURCE)]
    assert keys == ["paxlst/d/b.edi", "paxlst/d/c.edi"]


def test_a_new_version_in_a_versioned_bucket_lands_under_its_objects_key() -> None:
    event = _event("/buckets/airport-manifests/paxlst/d/a.edi.versions", _entry("v_0a1b2c"), ts=9)
    (landing,) = landings_in_filer_event(event, SOURCE)
    assert (landing.key, landing.landed_ns) == ("paxlst/d/a.edi", 9)
    folder = _event("/buckets/airport-manifests/paxlst/d", _entry("a.edi.versions", directory=True))
    assert list(landings_in_filer_event(folder, SOURCE)) == []


def test_an_entry_without_md5_is_tagged_by_its_chunks() -> None:
    event = _event("/buckets/airport-manifests/paxlst/d", _entry("m.edi", md5=""))
    (landing,) = landings_in_filer_event(event, SOURCE)
    assert landing.etag == "chunk-tag"


def test_the_stream_splits_documents_arriving_in_any_pieces() -> None:
    documents = [
        _event("/buckets/airport-manifests/paxlst/d", _entry(f"{n}.edi")) for n in range(3)
    ]
    text = "".join(json.dumps(d, indent=2) + "\n" for d in documents)
    stream = ChangeLogStream()
    found = []
    for start in range(0, len(text), 37):
        found += stream.feed(text[start : start + 37])
    assert found == documents


def test_a_line_that_is_not_json_is_kept_as_a_remark_and_skipped() -> None:
    document = _event("/buckets/airport-manifests/paxlst/d", _entry("1.edi"))
    stream = ChangeLogStream()
    found = stream.feed("tail 127.0.0.1:8888: subscribe: refused\n" + json.dumps(document))
    assert found == [document]
    assert stream.remarks == ["tail 127.0.0.1:8888: subscribe: refused"]
    assert stream.feed("half a line") == []
    assert stream.remarks[-1].startswith("tail")


def test_the_filers_md5_is_spelt_as_an_s3_etag() -> None:
    digest = hashlib.md5(b"hello", usedforsecurity=False)  # what S3's ETag is made of
    md5 = base64.b64encode(digest.digest()).decode()
    event = _event("/buckets/airport-manifests/paxlst/d", _entry("a.edi", md5=md5))
    (landing,) = landings_in_filer_event(event, SOURCE)
    assert landing.etag == digest.hexdigest()


def test_repeats_of_a_key_and_etag_are_dropped_and_a_change_is_not() -> None:
    keep = LandingFilter(capacity=2)
    first = Landing("b", "k", "e1", 1, 1)
    assert keep.is_new(first)
    assert not keep.is_new(first)
    assert keep.is_new(Landing("b", "k", "e2", 1, 2))  # replaced content
    assert keep.is_new(Landing("b", "k2", "e", 1, 3))
    assert keep.is_new(first)  # forgotten beyond the capacity; the ledger skips it then


def test_a_batch_is_due_after_its_linger_or_when_full() -> None:
    linger = Linger(linger_s=0.5, max_landings=3)
    landing = Landing("b", "k", "e", 1, 1)
    linger.add(landing, now=10.0)
    assert linger.take_if_due(10.4) == []
    assert linger.take_if_due(10.5) == [landing]
    assert linger.take_if_due(11.0) == []
    for now in (20.0, 20.01, 20.02):
        linger.add(landing, now)
    assert len(linger.take_if_due(20.03)) == 3


def test_s3_notifications_give_created_objects_with_decoded_keys() -> None:
    body = json.dumps(
        {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "eventTime": "2026-12-01T01:02:03.500Z",
                    "s3": {
                        "bucket": {"name": "airport-manifests"},
                        "object": {
                            "key": "paxlst/2026-12-01/CI/a+b%3D.edi",
                            "size": 5,
                            "eTag": "e",
                        },
                    },
                },
                {
                    "eventName": "ObjectRemoved:Delete",
                    "s3": {"bucket": {"name": "airport-manifests"}, "object": {"key": "paxlst/x"}},
                },
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "other"}, "object": {"key": "paxlst/y"}},
                },
            ]
        }
    )
    (landing,) = landings_from_s3_notification(body, SOURCE)
    assert landing.key == "paxlst/2026-12-01/CI/a b=.edi"
    assert (landing.etag, landing.size) == ("e", 5)
    assert landing.landed_ns == 1_796_086_923_500_000_000
    assert landings_from_s3_notification(json.dumps({"Event": "s3:TestEvent"}), SOURCE) == []
