"""Drops for the partner: built in memory (:mod:`.drops`), settled through a staging folder
(:mod:`.publisher`), compared with what was published before (:mod:`.record_index`), and
verified and fetched from the partner's side (:mod:`.partner`)."""
