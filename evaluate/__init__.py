"""``thresher eval``: models answer held-out prompts; programmatic verifiers, reference NLL,
reward models and LLM judges score the answers; paired statistics compare every pair of
models (see :mod:`thresher.evaluate.stage`). Heavy imports happen only when a stage runs."""

if __name__ != "thresher.evaluate":  # imported as a top-level folder, e.g. `import evaluate` from the repo root
    raise ImportError(
        "the 'evaluate' folder is installed as 'thresher.evaluate': use `import thresher.evaluate`, not `import evaluate`"
    )
