"""``trader tune``: hyperparameter search on Optuna, scored out of sample (see docs/tuning.md).

- :mod:`trader.tune.space`: the search space, from the strategy's declared parameters.
- :mod:`trader.tune.trial`: one trial, a purged walk-forward on the tuning range (an executor task).
- :mod:`trader.tune.study`: the orchestrator (the study's only writer), the held-out tail, the report.
- :mod:`trader.tune.applied`: ``--apply``'s ``TRADER_HOME/tuned/NAME.toml``.

Optuna is imported only by the orchestrator (``pip install 'trader-core[tune]'``).
"""
