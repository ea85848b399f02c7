"""Scheduled housekeeping around the exchange: reconciliation and retention.

Like the stages, these functions take a client and locations and never import Prefect.
"""
