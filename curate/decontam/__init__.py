"""Benchmark decontamination by word n-gram overlap (``thresher curate decontam``).

- :mod:`.ngrams`: text normalisation and vectorised 64-bit word n-gram hashing;
- :mod:`.benchmarks`: built-in benchmark texts (HumanEval, MMLU) and user files;
- :mod:`.index`: the sorted index of benchmark n-gram hashes and the linear scan;
- :mod:`.stage`: the stage (``Config`` and ``run``); :mod:`.cli`: the click command.
"""
