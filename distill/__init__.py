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
