"""Pre-departure border-data exchange: PAXLST manifests in, partitioned Parquet drops out."""

__version__ = "0.1.0"
