"""Claimed source objects -> one set of parsed tables for the run (:mod:`.manifests`)."""
