"""Recipes: one YAML file from prompts and a teacher to a curated set and a trained student.

- :mod:`thresher.recipe.schema`: parse and validate recipes (``load_recipe``), ``--set`` overrides;
- :mod:`thresher.recipe.runner`: ``run_recipe`` runs the stages into a run directory;
- :mod:`thresher.recipe.inputs`: the inputs step (``00-inputs``);
- :mod:`thresher.recipe.evaluate`: the ``evaluate`` stage (did curation pay off?);
- :mod:`thresher.recipe.cli`: ``thresher run`` and ``thresher recipe validate|show``.
"""
