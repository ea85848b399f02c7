"""One exchange run's identity and locations: its store clients, ledger, publish lock and
publisher, and where its quarantine and reports go."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from manifest_exchange.agreements.terms import Agreement
from manifest_exchange.config import HmacKey, S3Settings, Settings
from manifest_exchange.ingest.manifests import ObjectToRead
from manifest_exchange.publish.drops import drops_root
from manifest_exchange.publish.publisher import DropPublisher
from manifest_exchange.storage.ledger import Claim, Ledger
from manifest_exchange.storage.locks import PublishLock
from manifest_exchange.storage.s3 import S3Client, S3Location, make_client


@dataclass(frozen=True)
class RunContext:
    """Who the run is and where it reads and writes."""

    run_id: str
    started_at: dt.datetime
    agreement: Agreement
    source: S3Location
    state: S3Location
    partner: S3Location
    hmac_key: HmacKey
    s3: S3Settings
    client: S3Client
    claim_timeout_s: float
    lock_timeout_s: float

    @classmethod
    def create(
        cls,
        settings: Settings,
        agreement: Agreement,
        *,
        source: str,
        state: str,
        partner: str | None = None,
        run_id: str | None = None,
    ) -> RunContext:
        return cls(
            run_id=run_id or str(uuid.uuid4()),
            started_at=dt.datetime.now(dt.UTC),
            agreement=agreement,
            source=S3Location.parse(source),
            state=S3Location.parse(state),
            partner=S3Location.parse(partner or agreement.partner_location),
            hmac_key=settings.hmac_key_for(agreement.hmac_key_id),
            s3=settings.s3,
            client=make_client(settings.s3),
            claim_timeout_s=settings.claim_timeout_s,
            lock_timeout_s=settings.lock_timeout_s,
        )

    @property
    def ledger(self) -> Ledger:
        # The claim lock is held for a listing and one write: a stalled holder is taken over
        # within a minute (sooner where the lock timeout is shorter), not the publish lock's.
        claim_lock_timeout_s = min(60.0, self.lock_timeout_s)
        return Ledger(self.client, self.state, self.claim_timeout_s, claim_lock_timeout_s)

    @property
    def publish_lock(self) -> PublishLock:
        return PublishLock(self.client, self.state, self.lock_timeout_s)

    @property
    def publisher(self) -> DropPublisher:
        return DropPublisher(self.client, self.state, self.partner)

    def run_folder(self) -> S3Location:
        return S3Location(self.state.bucket, self.state.key("runs", self.run_id))

    def quarantine_folder(self, batch: int | None = None) -> S3Location:
        """The run's quarantine, or one batch's part of it (``batch=00000``, Hive-style)."""
        folder = self.state.key("quarantine", self.run_id)
        if batch is not None:
            folder = f"{folder}/batch={batch:05d}"
        return S3Location(self.state.bucket, folder)

    def drop_location(self, drop_id: str) -> S3Location:
        root = drops_root(self.partner, self.agreement.schema_version)
        return S3Location(root.bucket, root.key(drop_id))


def objects_to_read(claims: list[Claim]) -> list[ObjectToRead]:
    """The claimed objects in receive order (claim time, then key: a run claims all it found
    at once, so the parts of a flight's list, named alike, stay together)."""
    ordered = sorted(claims, key=lambda c: (c.claimed_at, c.source.key))
    return [
        ObjectToRead(c.source.bucket, c.source.key, c.claimed_at, c.source.size) for c in ordered
    ]
