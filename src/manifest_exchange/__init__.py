"""Pre-departure border-data exchange: PAXLST manifests in, partitioned Parquet drops out."""

import os

import pyarrow as pa

__version__ = "0.1.0"

# Arrow's bundled jemalloc keeps what a checked batch freed mapped, so peak memory grew with the
# number of batches (decision 0018). Every process that runs the pipeline (CLI, flow, Dask
# worker) imports this package first; an operator's own ARROW_DEFAULT_MEMORY_POOL still decides.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())
