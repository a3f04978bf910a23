"""Exact and MinHash/LSH near-duplicate removal (``thresher curate dedup``).

Layout (one phase per module):

- :mod:`.normalize` -- text to compare (prompt/response/conversation) and normalisation.
- :mod:`.shingles`  -- word/character n-gram shingles hashed to 32-bit values (fast or sha1).
- :mod:`.minhash`   -- vectorised MinHash signatures, identical to ``datasketch.MinHash``.
- :mod:`.lsh`       -- band/row parameters, band keys, candidate pairs, verification, components.
- :mod:`.store`     -- memory-bounded signature and band-key storage (spills to disk).
- :mod:`.engine`    -- the end-to-end pipeline on a DataFrame (exact, against, near).
- :mod:`.streaming` -- the same from streamed batches: signatures per batch, decisions from a projection.
- :mod:`.stage`     -- the stage contract (``Config`` and ``run``).
- :mod:`.cli`       -- the ``thresher curate dedup`` click command.
- :mod:`._kernels`  -- numba kernels behind the hot loops.
"""
