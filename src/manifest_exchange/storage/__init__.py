"""S3 access (:mod:`.s3`) and pyiceberg's file access over it (:mod:`.table_io`), the ledger of
processed objects (:mod:`.ledger`) and the leases that serialise runs (:mod:`.locks`)."""
