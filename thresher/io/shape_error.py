"""The error a record raises when it does not fit its shape.

Its own module, so that :mod:`thresher.io.shapes` can use :mod:`thresher.io.chat` and
:mod:`thresher.io.openai_batch`, which raise it, without an import cycle.
"""

from __future__ import annotations


class ShapeError(ValueError):
    """A record does not fit its shape (the message is the reason)."""
