"""The orchestrator of ``trader tune``: the study's only writer, the held-out tail, the report.

- **Ranges**: the chosen candles are split once: the tuning range (the head) and the held-out tail
  (``holdout`` of the bars). Trials are handed the tuning range only (the executor's shared input);
  each records the first and last candle it read. The tail scores the best parameters once.
- **Trials** run in rounds of ``batch`` (a fixed number, not the worker count, so the same seed
  gives the same study whatever the executor): the orchestrator asks Optuna for the round's
  trials (TPE, reseeded from the seed and the trial number), runs them as executor tasks, then
  tells them in trial order: per-fold reports first (the running compounded return after each
  fold), which the median pruner may prune, then the objective. A trial with fewer than
  ``min_trades`` trades, or whose settings the strategy refuses, is told FAIL (with the reason).
- **Resuming**: trials asked but never told (a killed run) are run again with their stored values
  before new ones are asked, and a round is completed before the next begins, so a killed and
  resumed run ends with the same trials as one that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from trader.errors import ConfigError
from trader.tune.space import SearchSpace
from trader.tune.storage import open_storage, redact_url, storage_error
from trader.tune.trial import TrialTask, evaluate_trial, trial_config

__all__ = ["TuneSetup", "default_storage", "import_optuna", "open_study", "run_trials", "final_report",
           "list_studies", "split_rows"]

OPTUNA_INSTALL = "pip install 'trader-core[tune]'"


def import_optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"trader tune needs Optuna: {OPTUNA_INSTALL}") from None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def default_storage(home: Path) -> str:
    """``sqlite:///HOME/tune/studies.db`` (the folder is created)."""
    folder = Path(home) / "tune"
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'studies.db'}"


@attrs.frozen
class TuneSetup:
    """Everything that decides a study's trials (stored with it: a resume must match)."""

    plugin: str
    symbol: str
    timeframe: str
    study: str
    storage: str
    trials: int
    objective: str = "sharpe"
    seed: int = 0
    batch: int = 4
    min_trades: int = 5
    holdout: float = 0.2
    folds: int = 4
    train_bars: int | None = None
    test_bars: int | None = None
    purge: int = 24
    embargo: int = 0
    settings: Any = None  # trader.backtest.runner.BacktestSettings (costs) of the trials and the tail

    def identity(self, space: SearchSpace, tuning: tuple[int, int], holdout: tuple[int, int], plan: Any) -> dict[str, Any]:
        return {
            "plugin": self.plugin, "symbol": self.symbol, "timeframe": self.timeframe, "objective": self.objective,
            "seed": self.seed, "batch": self.batch, "min_trades": self.min_trades, "space": space.to_dict(),
            "tuning_range": list(tuning), "holdout_range": list(holdout),
            "plan": {"train_bars": plan.train_bars, "test_bars": plan.test_bars, "purge": plan.purge,
                     "embargo": plan.embargo},
        }


def split_rows(n_rows: int, holdout: float, min_tail: int = 50) -> tuple[int, int]:
    """``(tuning_rows, tail_rows)`` of *n_rows* candles."""
    if not 0.0 < holdout < 0.9:
        raise ConfigError(f"--holdout must be above 0 and below 0.9, got {holdout}")
    tail = int(round(n_rows * holdout))
    if tail < min_tail or n_rows - tail < 4 * min_tail:
        raise ConfigError(f"{n_rows} candles are too few to tune on: the held-out tail would have {tail} bars "
                          f"(at least {min_tail}) and the tuning range {n_rows - tail} (at least {4 * min_tail})")
    return n_rows - tail, tail


def walk_forward_plan(setup: TuneSetup, n_tune: int, train_params: Mapping[str, Any]) -> Any:
    """The trials' walk-forward: ``folds`` test windows after a training window twice as long,
    unless ``train_bars``/``test_bars`` are given."""
    from trader.backtest.walkforward import WalkForwardPlan

    gap = setup.purge + setup.embargo
    test = setup.test_bars or max(1, (n_tune - gap) // (setup.folds + 2))
    train = setup.train_bars or max(1, 2 * test)
    if train + gap + test > n_tune:
        raise ConfigError(f"the tuning range ({n_tune} bars) is too short for --train-bars {train} + purge/embargo "
                          f"{gap} + --test-bars {test}")
    return WalkForwardPlan(train, test, None, setup.purge, setup.embargo, False, dict(train_params), setup.seed)


def open_study(setup: TuneSetup, identity: Mapping[str, Any], defaults: Mapping[str, Any] | None) -> Any:
    """The study *setup* names, created (with the current settings as trial 0) or loaded; a stored study
    made with other settings is refused, naming the first that differs."""
    optuna = import_optuna()
    storage = open_storage(setup.storage)  # a missing driver, a bad URL, a refusing server: one line
    try:
        study = optuna.create_study(study_name=setup.study, storage=storage, direction="maximize",
                                    load_if_exists=True)
    except Exception as exc:
        raise ConfigError(storage_error(setup.storage, exc)) from None
    stored = study.user_attrs.get("setup")
    if stored is None:
        study.set_user_attr("setup", dict(identity))
        if defaults is not None:
            study.enqueue_trial(dict(defaults), user_attrs={"default": True})
    else:
        for key, value in identity.items():
            if stored.get(key) != value:
                raise ConfigError(f"study {setup.study!r} was started with another {key} ({_short(stored.get(key))}, now "
                                  f"{_short(value)}); run with its settings to resume, or give another --study")
    return study


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _finished(study: Any) -> list[Any]:

    return [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]


def _running(study: Any) -> list[Any]:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]


def _chosen(study: Any, frozen: Any, space: SearchSpace, seed: int) -> dict[str, Any]:
    """The values of an unrecorded trial; a run killed between asking and choosing them chooses them now,
    with the sampler seeded as :func:`_ask` seeded it for that trial, so they are what it would have chosen."""
    if len(frozen.params) < len(space.dimensions):
        optuna = import_optuna()
        study.sampler = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + frozen.number) % (2**32))
        trial = optuna.trial.Trial(study, frozen._trial_id)
        for dim in space.dimensions:
            dim.suggest(trial)
        return dict(trial.params)
    return dict(frozen.params)


def _ask(study: Any, seed: int) -> Any:
    optuna = import_optuna()
    number = len(study.get_trials(deepcopy=False, states=None))
    # reseeded per trial number: a resumed study asks what an unbroken one would have
    study.sampler = optuna.samplers.TPESampler(seed=(seed * 1_000_003 + number) % (2**32))
    return study.ask()


def run_trials(setup: TuneSetup, space: SearchSpace, study: Any, executor: Any, tuning: Any, base_config: Any,
               base_train: Mapping[str, Any], plan: Any, source: Any, *, timeout: float | None = None,
               on_round: Callable[[Any, list[dict[str, Any]]], None] | None = None) -> int:
    """Run trials until the study holds ``setup.trials`` finished ones (or *timeout* seconds passed);
    returns how many were told by this call."""
    optuna = import_optuna()
    from optuna.trial import TrialState

    study.pruner = optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    began = time.monotonic()
    told = 0
    # a trial needs its objective only: no baseline, bootstrap or wide-spread run
    trial_settings = attrs.evolve(setup.settings, n_resamples=100, benchmark=False, spread_multiplier=None)
    while True:
        pending = sorted(_running(study), key=lambda t: t.number)
        n_all = len(_finished(study)) + len(pending)
        # a killed run's unrecorded trials finish THEIR round first: asking more now would sample them from
        # a history the uninterrupted run never had, and the studies would part
        room = (setup.batch - n_all % setup.batch) % setup.batch if pending else setup.batch - n_all % setup.batch
        asks = max(0, min(room, setup.trials - n_all))
        if not pending and not asks:
            return told
        if timeout is not None and time.monotonic() - began > timeout and not pending:
            return told
        numbers = [t.number for t in pending]
        trial_ids = {t.number: t._trial_id for t in pending}
        values = {t.number: _chosen(study, t, space, setup.seed) for t in pending}
        for _ in range(asks):
            trial = _ask(study, setup.seed)
            for dim in space.dimensions:
                dim.suggest(trial)
            numbers.append(trial.number)
            trial_ids[trial.number] = trial._trial_id
            values[trial.number] = dict(trial.params)
        tasks = []
        for number in numbers:
            signal, train = space.split(values[number])
            tasks.append(TrialTask(
                number=number, plugin=setup.plugin, symbol=setup.symbol, timeframe=setup.timeframe,
                config=trial_config(base_config, setup.plugin, signal, train),
                plan=attrs.evolve(plan, train_params={**base_train, **train}),
                settings=trial_settings, source=source, objective=setup.objective,
            ))
        results = executor.map(evaluate_trial, tasks, shared=tuning)
        for number, result in zip(numbers, results, strict=True):
            _tell(study, optuna.trial.Trial(study, trial_ids[number]), result, setup, TrialState)
            told += 1
        if on_round is not None:
            on_round(study, results)


def _tell(study: Any, trial: Any, result: Mapping[str, Any], setup: TuneSetup, states: Any) -> None:
    for key in ("read_range", "trades", "per_bar_sharpe", "metrics", "folds", "seconds"):
        if key in result:
            trial.set_user_attr(key, result[key])
    if result.get("error"):
        trial.set_user_attr("failed", result["error"])
        study.tell(trial, state=states.FAIL)
        return
    if result["trades"] < setup.min_trades:
        trial.set_user_attr("failed", f"{result['trades']} trade(s), fewer than --min-trades {setup.min_trades}")
        study.tell(trial, state=states.FAIL)
        return
    if result.get("value") is None:
        trial.set_user_attr("failed", f"no {setup.objective} (a flat equity curve)")
        study.tell(trial, state=states.FAIL)
        return
    growth = 1.0
    for step, ret in enumerate(result.get("fold_returns") or []):
        if ret is None:
            continue
        growth *= 1.0 + ret
        trial.report(growth - 1.0, step)
        if trial.should_prune():
            study.tell(trial, state=states.PRUNED)
            return
    study.tell(trial, result["value"])


# --------------------------------------------------------------------------- the report


def final_report(setup: TuneSetup, space: SearchSpace, study: Any, manager: Any, config: Any, candles: Any,
                 base_train: Mapping[str, Any], plan: Any, n_tune: int, source: str) -> dict[str, Any]:
    """The best trial beside the deflated Sharpe over every finished trial, its settings re-run on the
    tuning range (selected there: in sample for the search) and, once, on the held-out tail."""
    import numpy as np
    from optuna.trial import TrialState

    from trader.backtest.bootstrap import deflated_sharpe_ratio
    from trader.backtest.runner import quiet_engine_logs
    from trader.backtest.walkforward import run_walk_forward
    from trader.evaluation.performance import equity_returns

    finished = _finished(study)
    complete = [t for t in finished if t.state == TrialState.COMPLETE]
    counts = {s.name.lower(): sum(t.state == s for t in finished) for s in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)}
    if not complete:
        reasons = sorted({str(t.user_attrs.get("failed")) for t in finished if t.user_attrs.get("failed")})
        raise ConfigError(f"no trial of study {setup.study!r} finished with at least {setup.min_trades} trades"
                          + (f" ({'; '.join(reasons)[:200]})" if reasons else ""))
    best = study.best_trial
    signal, train = space.split(best.params)
    best_config = trial_config(config, setup.plugin, signal, train)
    best_plan = attrs.evolve(plan, train_params={**base_train, **train})
    full = attrs.evolve(setup.settings, n_trials=1)
    ts = candles["timestamp"]
    tuning = candles.iloc[:n_tune]
    with quiet_engine_logs():
        in_range = run_walk_forward(manager, best_config, setup.plugin, tuning, best_plan, symbol=setup.symbol,
                                    timeframe=setup.timeframe, source=source, settings=full)
        tail_rows = len(candles) - n_tune
        gap = plan.purge + plan.embargo
        first = n_tune - gap - plan.train_bars
        tail_plan = attrs.evolve(best_plan, test_bars=tail_rows, step=None, anchored=False)
        tail = run_walk_forward(manager, best_config, setup.plugin, candles, tail_plan, symbol=setup.symbol,
                                timeframe=setup.timeframe, source=source, settings=full,
                                start=int(ts.iloc[max(first, 0)]), end=int(ts.iloc[-1]))
    sharpes = [t.user_attrs.get("per_bar_sharpe") for t in finished]
    sharpes = [s for s in sharpes if s is not None and math.isfinite(s)]
    variance = float(np.var(sharpes, ddof=1)) if len(sharpes) > 1 else None
    dsr = deflated_sharpe_ratio(equity_returns(in_range.run.equity), n_trials=len(finished), trial_sharpe_variance=variance)
    default = next((t for t in finished if t.user_attrs.get("default")), None)
    return {
        "study": setup.study, "storage": redact_url(setup.storage), "strategy": setup.plugin, "symbol": setup.symbol,
        "timeframe": setup.timeframe, "source": source, "objective": setup.objective, "space": space.to_dict(),
        "trials": counts, "n_trials": len(finished),
        "tuning_range": [int(ts.iloc[0]), int(ts.iloc[n_tune - 1])], "holdout_range": [int(ts.iloc[n_tune]), int(ts.iloc[-1])],
        "plan": {"train_bars": plan.train_bars, "test_bars": plan.test_bars, "purge": plan.purge, "embargo": plan.embargo},
        "best": {"number": best.number, "value": best.value, "params": dict(best.params), "signal_params": signal,
                 "train_params": train, "trades": best.user_attrs.get("trades")},
        "default": None if default is None else {"number": default.number, "value": default.value,
                                                  "state": default.state.name.lower(), "params": dict(default.params),
                                                  "failed": default.user_attrs.get("failed")},
        "deflated_sharpe": _finite(dsr), "trial_sharpe_variance": variance,
        "tuning": in_range.to_dict(), "holdout": tail.to_dict(),
        "importances": _importances(study, setup.seed) if len(complete) >= 2 else None,  # one trial ranks nothing
    }


def _finite(value: Any) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def _importances(study: Any, seed: int) -> dict[str, float] | None:
    """Optuna's fANOVA importances (``None`` under two complete trials or when it cannot fit)."""
    import optuna

    try:
        found = optuna.importance.get_param_importances(
            study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (ValueError, RuntimeError, ImportError):
        return None
    return {k: float(v) for k, v in found.items()}


def list_studies(storage: str) -> list[dict[str, Any]]:
    """The studies in *storage*: name, trials, best value, and what they tune."""
    optuna = import_optuna()
    opened = open_storage(storage)
    try:
        summaries = optuna.get_all_study_summaries(storage=opened, include_best_trial=True)
    except Exception as exc:
        raise ConfigError(storage_error(storage, exc)) from None
    rows = []
    for s in sorted(summaries, key=lambda s: s.study_name):
        setup = s.user_attrs.get("setup", {})
        rows.append({"study": s.study_name, "trials": s.n_trials, "plugin": setup.get("plugin"),
                     "symbol": setup.get("symbol"), "timeframe": setup.get("timeframe"),
                     "objective": setup.get("objective"),
                     "best_value": s.best_trial.value if s.best_trial is not None else None,
                     "best_params": dict(s.best_trial.params) if s.best_trial is not None else None,
                     "started": s.datetime_start.isoformat(timespec="seconds") if s.datetime_start else None})
    return rows
