"""Choices shared by the configs of several packages, each written once as a ``Literal``.

A Config field annotated with one of these is checked by :func:`thresher.config.from_dict`
(``key: must be one of 'local' | 'ray', got 'spark'``) and becomes a ``click.Choice`` in the
generated options (:mod:`thresher.cli.config_options`); the tuples are for hand-written code.
"""

from __future__ import annotations

from typing import Literal, get_args

#: where stages run: here, or on a Ray cluster (``--executor``, a recipe's ``executor:``)
Executor = Literal["local", "ray"]
EXECUTORS: tuple[str, ...] = get_args(Executor)

#: how a model generates (generate's and eval's ``backend``): auto (vllm when installed with a
#: GPU, else transformers) or a named backend of :mod:`thresher.distill.backends`
GenerateBackend = Literal["auto", "transformers", "vllm", "openai", "openai-batch"]
GENERATE_BACKENDS: tuple[str, ...] = get_args(GenerateBackend)
