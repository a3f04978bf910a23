"""Recipes: one YAML file from prompts and a teacher to a curated set and a trained student.

- :mod:`thresher.recipe.loading`: read a recipe file and its ``--set`` overrides (``load_recipe``);
- :mod:`thresher.recipe.spec`: the recipe's dataclasses, parsed and validated (``parse_recipe``);
- :mod:`thresher.recipe.runner`: ``run_recipe`` runs the stages into a run directory;
- :mod:`thresher.recipe.inputs_step`: the inputs step (``00-inputs``);
- :mod:`thresher.recipe.evaluate`: the ``evaluate`` stage (did curation pay off?);
- :mod:`thresher.recipe.cli`: ``thresher run`` and ``thresher recipe validate|show``.
"""
