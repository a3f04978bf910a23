"""thresher: from a teacher model and raw prompts to a clean, balanced SFT set and a LoRA student.

The core package holds the row schema, readers and writers, run directories (stages),
config validation, the model cache and the root CLI. Stage packages live in
``thresher.curate``, ``thresher.distill`` and ``thresher.train``.
"""

__version__ = "0.5.0"
