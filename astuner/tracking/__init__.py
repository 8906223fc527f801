"""Experiment tracking besides ``metrics.jsonl``: tracker names, sinks, run ids, tables and plots.

``astuner.metrics.MetricsLogger`` is the one entry point a backbone uses; the modules here are its
parts, one concept each:

- ``names``: which trackers exist, how ``trainer_common.logger`` is normalised, whether the
  configured ones are installed (light: imports no tracker package);
- ``run_ids``: ``<exp_dir>/tracker_ids.json``, the tracker run ids a resumed run reuses;
- ``sinks``: one adapter per tracker (tensorboard, wandb, swanlab, mlflow);
- ``table``: the validation completions table;
- ``curves``: the multi-panel training-curve PNG;
- ``summary_plot``: the debug backbone's summary PNG.

Importing this package imports none of matplotlib, torch or a tracker package.
"""
