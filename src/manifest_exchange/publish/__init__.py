"""Drops for the partner: built in memory (:mod:`.drops`), settled through a staging folder
(:mod:`.publisher`), chained in sequence (:mod:`.sequence`), from format v3 registered as
snapshots of an Iceberg table (:mod:`.drop_table`), compared with what was published before
(:mod:`.record_index`), and verified and fetched from the partner's side (:mod:`.partner`)."""
