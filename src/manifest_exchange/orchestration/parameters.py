"""The run options every exchange flow takes (one agreement, its backfill, every partner)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from manifest_exchange.runs.batches import DEFAULT_BATCH_MB


class RunOptions(BaseModel):
    """How a run reaches the store and where it checks its batches.

    One model for the three exchange flows, so a deployment, the UI's run form and the CLI
    set them the same way.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    s3_credentials_block: str | None = Field(
        default=None,
        description="AwsCredentials block to reach the store with "
        "(default: the AWS_* environment variables).",
    )
    hmac_key_block: str | None = Field(
        default=None,
        description="Secret block with the document-matching keys "
        "(default: MX_HMAC_KEY_ID / MX_HMAC_KEY).",
    )
    runner: Literal["threads", "dask"] = Field(
        default="threads",
        description="Where batches are checked: in the flow's process, or on a Dask cluster.",
    )
    dask_address: str | None = Field(
        default=None,
        description="An existing Dask scheduler for runner 'dask' (default: a local cluster).",
    )
    batch_mb: float = Field(
        default=DEFAULT_BATCH_MB,
        gt=0,
        description="Objects per batch, by listed size; one drop per batch that has records.",
    )

    @property
    def batch_bytes(self) -> int:
        return int(self.batch_mb * 1024 * 1024)
