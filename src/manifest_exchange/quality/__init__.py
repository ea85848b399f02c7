"""Data-quality checks: the Great Expectations suites in ``expectations/`` (:mod:`.suites`), run
over Arrow batches (:mod:`.validator`), with failing rows derived in DuckDB (:mod:`.failures`)."""
