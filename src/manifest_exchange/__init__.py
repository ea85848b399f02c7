"""Pre-departure border-data exchange: PAXLST manifests in, partitioned Parquet drops out."""

import os

import pyarrow as pa

__version__ = "0.1.0"

# Arrow's bundled jemalloc keeps what a checked batch freed mapped, so peak memory grew with the
# number of batches (decision 0018). Every process that runs the pipeline (CLI, flow, Dask
# worker) imports this package first; an operator's own ARROW_DEFAULT_MEMORY_POOL still decides.
if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
    pa.set_memory_pool(pa.system_memory_pool())

# Border data never phones home, whichever entry point runs (CLI, flow, Dask worker): this
# package is imported before Prefect or GX read their settings (Dask workers preload it,
# decision 0022), and Prefect's client checks DO_NOT_TRACK at each event. An operator may
# still opt in.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "False")
