"""``thresher eval``: models answer held-out prompts; programmatic verifiers, reference NLL,
reward models and LLM judges score the answers; paired statistics compare every pair of
models (see :mod:`thresher.evaluate.stage`). Heavy imports happen only when a stage runs."""
