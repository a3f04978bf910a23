"""Balanced, quality-first category mixtures (``thresher curate mix``).

- :mod:`.spec`: the mix spec (YAML or mapping) as frozen dataclasses, every problem at once;
- :mod:`.plan`: per-category targets (count, weight, temperature) and shortfall handling;
- :mod:`.select`: polars selection on narrow columns (quality-first or seeded random);
- :mod:`.gather`: inputs, read lazily; full rows only for what is written;
- :mod:`.stage`: the stage (``Config`` and ``run``); :mod:`.cli`: the click command.
"""
