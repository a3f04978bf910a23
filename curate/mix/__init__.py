"""Balanced, quality-first category mixtures (``thresher curate mix``).

- :mod:`.spec`: the mix spec (YAML or mapping) as frozen dataclasses, every problem at once;
- :mod:`.plan`: per-category targets (count, weight, temperature) and shortfall handling;
- :mod:`.select`: polars selection on narrow columns (quality-first or seeded random);
- :mod:`.gather`: inputs, read lazily; full rows only for what is written;
- :mod:`.decide`: the selection, drop reasons and stats on the narrow frame (both paths);
- :mod:`.stream`: large inputs as a streaming pass (plan from a projection, rows in parts);
- :mod:`.stage`: the stage (``Config`` and ``run``); :mod:`.cli`: the click command.
"""
