"""One exchange run around the stages: its context, its batches, what its objects came to, the
quarantine it settles and the report it writes (:mod:`.context`, :mod:`.batches`,
:mod:`.outcomes`, :mod:`.quarantine`, :mod:`.report`).

Nothing here logs personal data; quarantine files with personal data go to the state bucket.
"""
