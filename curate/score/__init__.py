"""Scoring conversation rows: reward models, response log-likelihood and an LLM judge.

``stage.run`` is the ``score`` stage (CLI: ``thresher curate score``); scorers live in
``reward``, ``loglik`` and ``judge``; ``batching`` forms length-sorted batches; ``cache``
keeps per-row results so nothing finished is scored twice; ``specs`` parses ``--scorer``.
"""
