"""Exchange v1 in DuckDB (:mod:`.exchange`, SQL in ``sql/``), the shapes it hands the other
stages (:mod:`.schemas`) and the bounds on what it accepts (:mod:`.limits`)."""
