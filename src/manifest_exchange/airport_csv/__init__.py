"""Airport departure-control CSV exports, read into the PAXLST parser's tables (:mod:`.exports`)."""
