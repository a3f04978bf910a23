"""A sandbox for model-written code: run a candidate and its tests, isolated as well as the
machine allows, and pass it only when the tests provably ran to the end.

- :func:`run_check` runs one candidate (``code``, ``tests``, ``entry_point``);
  :func:`verify_many` runs many in parallel workers. Both return :class:`Outcome`.
- :func:`detect` picks the strongest :class:`Level` that works here (``container`` with
  ``--sandbox CMD``, ``namespaces``, ``landlock``, ``fallback``); see
  :mod:`thresher.sandbox.levels` for what each blocks.
- The completion proof and the in-process guard: :mod:`thresher.sandbox.harness`.
"""

from thresher.sandbox.levels import ORDER, Level
from thresher.sandbox.run import Limits, Outcome, detect, run_check, verify_many

__all__ = ["ORDER", "Level", "Limits", "Outcome", "detect", "run_check", "verify_many"]
