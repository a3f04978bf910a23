"""thresher.distill: teacher responses for prompt rows (``thresher distill generate``).

- :mod:`thresher.distill.backends`: the generation interface (vLLM, OpenAI-compatible
  servers, transformers) shared with other packages through the core;
- :mod:`thresher.distill.stage`: the ``generate`` stage (Config + run), resumable through
  :mod:`thresher.distill.shards`;
- :mod:`thresher.distill.cli`: the ``distill`` click group.
"""

if __name__ != "thresher.distill":  # imported as a top-level folder, e.g. `import distill` from the repo root
    raise ImportError(
        "the 'distill' folder is installed as 'thresher.distill': use `import thresher.distill`, not `import distill`"
    )

import os as _os
import sys as _sys

# libgomp reads OMP_WAIT_POLICY when torch loads. By default its threads spin-wait, and on a
# busy or shared CPU that made CPU generation 3-4x slower here (SmolLM2, 2 threads, load ~7:
# naive 2.5 -> 8.3 tok/s, our batched backend 4.0 -> 42 tok/s with PASSIVE). Only when the
# user has not chosen, and only useful before torch is imported.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
