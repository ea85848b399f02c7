"""Prefect glue: run options, settings from blocks, retry policy, task runners, the check-ahead
loop, stage timing and run artifacts.

The pipeline's stages (ingest, quality, transform, publish, runs, operations) never import
Prefect; the flows in ``flows/``, this package and the local tooling are the only places that do.
"""
