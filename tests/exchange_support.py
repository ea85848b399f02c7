"""Shared by the integration tests that run the exchange: one test's prefixes, uploads, runs."""

from __future__ import annotations

import datetime as dt
import io
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifest_exchange.agreements.terms import AGREEMENTS_DIR, Agreement, load_agreement
from manifest_exchange.cli import load_exchange_flow
from manifest_exchange.local.commands import upload_corpus
from manifest_exchange.local.generate.paxlst import Corpus, GeneratorOptions, generate_day
from manifest_exchange.local.stack import (
    PARTNER_BUCKET,
    SOURCE_BUCKET,
    STATE_BUCKET,
    EmbeddedStack,
)
from manifest_exchange.operations.audit import AuditReport, audit
from manifest_exchange.orchestration.parameters import RunOptions
from manifest_exchange.reference.codes import airports
from manifest_exchange.storage.ledger import OUTCOME_SHEET_SUFFIX
from manifest_exchange.storage.s3 import S3Client, S3Location, get_bytes, iter_objects, put_bytes

FLIGHT_DATE = dt.date(2026, 12, 1)


class Exchange:
    """One test's prefixes, corpus uploads and flow runs."""

    def __init__(self, stack: EmbeddedStack, monkeypatch: pytest.MonkeyPatch) -> None:
        self.stack = stack
        self.name = f"t{uuid.uuid4().hex[:10]}"
        self.source = S3Location(SOURCE_BUCKET, self.name)
        self.locations = {
            "source": str(self.source),
            "state": f"s3://{STATE_BUCKET}/{self.name}",
            "partner": f"s3://{PARTNER_BUCKET}/{self.name}",
        }
        self.partner = S3Location(PARTNER_BUCKET, self.name)
        self.pipeline = stack.client("pipeline")
        for name, value in self.environment().items():
            monkeypatch.setenv(name, value)
        self.flow = load_exchange_flow()

    def environment(self) -> dict[str, str]:
        return {**self.stack.environment("pipeline"), "MX_CLAIM_TIMEOUT_S": "600"}

    def upload(self, corpus: Corpus, under: str = "") -> None:
        """Land ``corpus`` in this test's source, in the folder ``under`` if given."""
        source = S3Location(self.source.bucket, self.source.key(under))
        upload_corpus(corpus, source, self.stack.client("loader"))

    def upload_bytes(self, key: str, data: bytes) -> None:
        put_bytes(self.stack.client("loader"), SOURCE_BUCKET, self.source.key(key), data)

    def run(self, **options: Any) -> dict[str, Any]:
        """One exchange run; ``options`` are its :class:`RunOptions` (runner, batch_mb)."""
        report: dict[str, Any] = self.flow(**self.locations, options=RunOptions(**options))
        return report

    def run_agreement(self, agreement: Path, **options: Any) -> dict[str, Any]:
        """One exchange run of an agreement file (see :func:`agreement_copy`): this test's
        source and state, the agreement's own partner location."""
        report: dict[str, Any] = self.flow(
            source=self.locations["source"],
            state=self.locations["state"],
            agreement=str(agreement),
            options=RunOptions(**options),
        )
        return report

    def audit_agreement(self, terms: Agreement) -> AuditReport:
        """The exactly-once audit of :meth:`run_agreement`'s runs."""
        return audit(
            self.pipeline,
            source=self.source,
            state=S3Location(STATE_BUCKET, self.name),
            partner=S3Location.parse(terms.partner_location),
            agreement=terms,
            now=dt.datetime.now(dt.UTC),
        )

    def audit(self, later: dt.timedelta = dt.timedelta(0)) -> AuditReport:
        """The exactly-once audit over this test's prefixes, as it stands ``later`` from now."""
        return audit(
            self.pipeline,
            source=self.source,
            state=S3Location(STATE_BUCKET, self.name),
            partner=self.partner,
            agreement=load_agreement("tw-jp"),
            now=dt.datetime.now(dt.UTC) + later,
        )

    def edit_outcome(
        self, edit: Callable[[dict[str, Any]], None], where: Callable[[dict[str, Any]], bool]
    ) -> None:
        """Plant a fault in the ledger: ``edit`` the first recorded outcome ``where`` holds,
        in place in its outcome sheet."""
        state = S3Location(STATE_BUCKET, self.name)
        for info in iter_objects(self.pipeline, state):
            if not info.key.endswith(OUTCOME_SHEET_SUFFIX):
                continue
            sheet = json.loads(get_bytes(self.pipeline, STATE_BUCKET, info.key))
            chosen = next((o for o in sheet["outcomes"] if where(o)), None)
            if chosen is not None:
                edit(chosen)
                put_bytes(self.pipeline, STATE_BUCKET, info.key, json.dumps(sheet).encode())
                return
        raise AssertionError("no recorded outcome matches")

    def outcome_count(self, client: S3Client | None = None) -> int:
        """How many object outcomes the ledger's sheets hold."""
        client = client or self.pipeline
        state = S3Location(STATE_BUCKET, self.name)
        return sum(
            len(json.loads(get_bytes(client, STATE_BUCKET, info.key))["outcomes"])
            for info in iter_objects(client, state)
            if info.key.endswith(OUTCOME_SHEET_SUFFIX)
        )

    def published_rows(self) -> pa.Table:
        return self.published_rows_under(self.partner.prefix)

    def quarantine(self, run_id: str, name: str) -> pa.Table:
        """One kind of quarantine file (``travellers``, ``messages``, ``errors``) of every
        batch of a run, in batch order."""
        folder = S3Location(STATE_BUCKET, f"{self.name}/quarantine/{run_id}")
        tables = [
            pq.read_table(io.BytesIO(get_bytes(self.pipeline, STATE_BUCKET, info.key)))
            for info in iter_objects(self.pipeline, folder)
            if info.key.endswith(f"/{name}.parquet")
        ]
        return pa.concat_tables(tables, promote_options="permissive")

    def published_rows_under(self, prefix: str, bucket: str = PARTNER_BUCKET) -> pa.Table:
        """Every Parquet row under ``prefix`` of a partner bucket, in key order."""
        tables = [
            pq.read_table(io.BytesIO(get_bytes(self.pipeline, bucket, info.key)))
            for info in iter_objects(self.pipeline, S3Location(bucket, prefix))
            if info.key.endswith(".parquet")
        ]
        return pa.concat_tables(tables) if tables else pa.table({})


def agreement_copy(
    exchange: Exchange, folder: Path, name: str, **overrides: str | list[str]
) -> tuple[Agreement, Path]:
    """A shipped agreement in ``folder`` with this test's partner prefix in its partner bucket
    (``<test>/tw-jp`` for ``tw-jp-v3``: versions share a prefix), and ``overrides`` (settings
    the file already has) replaced."""
    text = (AGREEMENTS_DIR / f"{name}.toml").read_text()
    shipped = load_agreement(name)
    prefix = re.sub(r"-v\d+$", "", name)
    settings: dict[str, str | list[str]] = {
        "partner_location": f"s3://{shipped.partner_bucket}/{exchange.name}/{prefix}",
        **overrides,
    }
    for setting, value in settings.items():
        text = re.sub(rf"^{setting} = .*$", f"{setting} = {json.dumps(value)}", text, flags=re.M)
    path = folder / f"{name}.toml"
    path.write_text(text)
    return load_agreement(str(path)), path


def iceberg_properties(stack: EmbeddedStack, identity: str) -> dict[str, str]:
    """pyiceberg's store properties for one identity (what a reader passes ``StaticTable``)."""
    settings = stack.s3_settings(identity)
    return {
        "s3.endpoint": str(settings.endpoint_url),
        "s3.region": settings.region,
        "s3.access-key-id": str(settings.access_key_id),
        "s3.secret-access-key": str(settings.secret_access_key),
    }


def make_corpus(**overrides: Any) -> Corpus:
    options = {"flights": 8, "seed": 11, "defect_rate": 0.0, "resend_rate": 0.0, **overrides}
    return generate_day(GeneratorOptions(FLIGHT_DATE, **options))


def expected_outcomes(corpus: Corpus) -> dict[str, int]:
    """Outcome counts from ground truth, for a corpus without structural defects or resends."""
    table = airports()
    counts = {"published": 0, "out_of_scope": 0, "duplicates": 0, "quarantined_rows": 0}
    for flight in corpus.flights:
        flight_in_scope = table[flight.legs[0].dep].country == "TWN" and any(
            table[leg.arr].country == "JPN" for leg in flight.legs
        )
        for traveller in (*flight.passengers, *flight.crew):
            in_scope = (
                flight_in_scope
                and traveller.party in ("FL", "DDU")
                and traveller.nationality != "JPN"
            )
            if not in_scope:
                counts["out_of_scope"] += 1
            elif traveller.defects:
                counts["quarantined_rows"] += 1
            else:
                counts["published"] += 1
    return counts


def revise_one_traveller(corpus: Corpus) -> tuple[bytes, bytes]:
    """A standard-syntax passenger list again as revision 2, one passenger's name changed."""
    table = airports()
    for obj in corpus.objects:
        flight = next(f for f in corpus.flights if f.flight_key == obj.flight_key)
        in_scope = table[flight.legs[0].dep].country == "TWN" and len(flight.legs) == 1
        # Release characters would make a plain split on the terminator unsafe.
        body = obj.data[9:] if obj.data.startswith(b"UNA") else obj.data
        is_simple = obj.syntax in ("standard", "lines") and b"?" not in body
        if not is_simple or "745" not in obj.bgm_codes or not in_scope:
            continue
        segments = obj.data.decode("utf-8").split("'")
        for index, segment in enumerate(segments):
            if not segment.lstrip().startswith("NAD+FL+++"):
                continue
            following = segments[index + 1 : index + 12]
            following = [s.lstrip() for s in following]
            nationality = next(s for s in following if s.startswith("NAT+2+"))
            if nationality.endswith("JPN") or not any(s.startswith("DOC+") for s in following):
                continue
            segments[index] = segment + ":REVISED"
            text = "'".join(segments)
            text = text.replace(":::1'", ":::2'", 1)  # RFF+TN revision 1 -> 2
            return obj.data, text.encode("utf-8")
    raise AssertionError("no suitable passenger list in the corpus")
