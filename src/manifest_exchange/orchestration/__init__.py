"""Prefect glue: settings from blocks, retry policy, run artifacts and the local UI stack.

The pipeline's stages (ingest, quality, transform, publish, operations) never import Prefect;
the flows in ``flows/`` and this package are the only places that do.
"""
