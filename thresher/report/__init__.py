"""The run report and row explanations.

- :mod:`thresher.report.report`: ``write_report(run_dir)`` writes ``report.md`` (a dataset
  card) and ``report.html`` (with plots from :mod:`thresher.report.plots`);
- :mod:`thresher.report.why`: which stage dropped a row and why;
- :mod:`thresher.report.stage`: the ``report`` recipe stage;
- :mod:`thresher.report.cli`: ``thresher report`` and ``thresher why``.
"""
