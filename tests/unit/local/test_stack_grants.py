"""The embedded store's grants and policies for receipts, as written (the access matrix tries
them against a real store)."""

from __future__ import annotations

import json

from manifest_exchange.agreements.terms import list_agreements
from manifest_exchange.local.stack import (
    IDENTITY_ACTIONS,
    RECEIPTS_BUCKETS,
    bucket_policy,
    reader_identity,
)


def test_every_agreement_has_its_receipts_bucket_written_by_its_partner() -> None:
    for agreement in list_agreements():
        receipts = RECEIPTS_BUCKETS[agreement.receipts_bucket]
        assert receipts.writer == reader_identity(agreement.partner_bucket)
        assert agreement.receipts_location.split("/", 3)[3] in receipts.prefixes


def test_only_the_partner_may_write_receipts_and_only_under_its_prefixes() -> None:
    for bucket, receipts in RECEIPTS_BUCKETS.items():
        writes = {
            identity: [g for g in grants if g.partition("/")[0] == f"Write:{bucket}"]
            for identity, grants in IDENTITY_ACTIONS.items()
            if identity != "admin"
        }
        assert {i for i, granted in writes.items() if granted} == {receipts.writer}
        assert writes[receipts.writer] == [f"Write:{bucket}/{p}/*" for p in receipts.prefixes]
        assert {f"Read:{bucket}", f"List:{bucket}"} <= set(IDENTITY_ACTIONS["pipeline"])


def test_a_receipts_bucket_refuses_every_delete_and_every_other_writer() -> None:
    for bucket, receipts in RECEIPTS_BUCKETS.items():
        statements = {s["Sid"]: s for s in json.loads(bucket_policy(bucket))["Statement"]}
        assert statements["ReceiptsAreNeverDeleted"]["Principal"] == "*"
        barred = statements["OnlyThePartnerWritesReceipts"]["Principal"]["AWS"]
        assert sorted(name.rsplit("/", 1)[1] for name in barred) == sorted(
            set(IDENTITY_ACTIONS) - {receipts.writer}
        )
        assert all(s["Effect"] == "Deny" for s in statements.values())
