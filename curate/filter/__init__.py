"""Filtering scored rows: heuristics, thresholds, top fraction/k, normalisation, best-of-n.

``stage.run`` is the ``filter`` stage (CLI: ``thresher curate filter``); ``heuristics``
holds the per-response checks, ``rules`` the score rules. Every dropped row gets a reason.
"""
