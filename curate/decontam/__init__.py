"""Benchmark decontamination by word n-gram overlap (``thresher curate decontam``).

- :mod:`.ngrams`: text normalisation and 64-bit word n-gram hashing, over whole batches;
- :mod:`._kernels`: the numba kernels behind it (one pass over the UTF-8 bytes);
- :mod:`.benchmarks`: built-in benchmark texts (HumanEval, MMLU) and user files;
- :mod:`.index`: the sorted index of benchmark n-gram hashes and the linear scan;
- :mod:`.stage`: the stage (``Config`` and ``run``); :mod:`.cli`: the click command.
"""
