"""Small deterministic stage modules that follow the stage contract (CONTRIBUTING.md).

They let the recipe runner and the report be tested quickly and without models: each
exposes a frozen ``Config`` and ``run(inputs, out, config, *, force=False)`` and writes a
real stage folder through ``thresher.stage.StageFolder``. ``CALLS`` counts real (not reused) runs.
"""

CALLS: dict[str, int] = {}


def count(name: str) -> None:
    CALLS[name] = CALLS.get(name, 0) + 1
