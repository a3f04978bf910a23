"""The recipe stage ``evaluate``: the former name of the ``eval`` stage, kept so older recipes
still run. Everything lives in :mod:`thresher.evaluate.stage` now."""

from __future__ import annotations

from thresher.evaluate.models import find_model_dirs
from thresher.evaluate.stage import NAME, Config, run

__all__ = ["NAME", "Config", "find_model_dirs", "run"]
