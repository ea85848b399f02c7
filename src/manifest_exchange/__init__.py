"""Pre-departure border-data exchange: PAXLST manifests in, partitioned Parquet drops out."""

import os

import pyarrow as pa

__version__ = "0.1.0"

# Arrow's bundled jemalloc keeps much of what a checked batch freed mapped, so a run's peak
# memory crept up with its number of batches (a million travellers: 2,142 MB with jemalloc,
# 1,919 MB with the system allocator, bench/results/exchange-20261125T*). Every process that
# runs the pipeline (CLI, flow, Dask worker) imports this package first. An operator's own
# ARROW_DEFAULT_MEMORY_POOL still decides.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())
