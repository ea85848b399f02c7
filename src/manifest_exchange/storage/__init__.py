"""S3 access (:mod:`.s3`), the ledger of processed objects (:mod:`.ledger`) and the leases
that serialise runs (:mod:`.locks`)."""
