"""The ensemble's settings: training hyperparameters and signal thresholds.

Both are read from the user's ``[plugins.ensemble]`` table (and its ``train``
sub-table for training); a misspelt key or an out-of-range value is refused with a
:class:`trader.errors.ConfigError` that names it. :data:`PARAMS` declares the same keys to the
core (``StrategyInfo.params``), which checks them before any command starts. Light module: attrs only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

import attrs
from attrs import field, frozen

from trader.errors import ConfigError
from trader.feature_windows import DEFAULT_WINDOWS, check_windows
from trader.probability_signals import THRESHOLD_PARAMS, SignalThresholds
from trader.types import ParamSpec
from trader.validators import boolean, integer, number, one_of, optional

__all__ = ["MEMBERS", "EnsembleParams", "SignalThresholds", "signal_thresholds", "PARAMS"]

log = logging.getLogger("trader_ensemble")
_WARNED: set[tuple[type, str]] = set()

#: The models the ensemble can combine (``members``), by name.
MEMBERS = ("hgb", "extra_trees", "random_forest", "logistic")


def _members(instance: Any, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    unknown = [m for m in value if m not in MEMBERS]
    if unknown:
        raise ValueError(f"members: unknown model {unknown[0]!r} (choose from {', '.join(MEMBERS)})")
    if not value:
        raise ValueError("members must name at least one model")
    if len(set(value)) != len(value):
        raise ValueError(f"members lists a model twice: {list(value)}")


def _weights(instance: Any, attribute: attrs.Attribute, value: tuple[float, ...] | None) -> None:
    if value is None:
        return
    if len(value) != len(instance.members):
        raise ValueError(f"weights needs one weight per member ({len(instance.members)}), got {len(value)}")
    for w in value:
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not math.isfinite(w) or w < 0:
            raise ValueError(f"weights must be finite numbers >= 0, got {list(value)}")
    if sum(value) <= 0:
        raise ValueError("weights must not all be 0")


def _lags(instance: Any, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    for lag in value:
        if isinstance(lag, bool) or not isinstance(lag, int) or not 1 <= lag <= 50:
            raise ValueError(f"lags must be integers from 1 to 50, got {list(value)}")
    if len(set(value)) != len(value):
        raise ValueError(f"lags lists a lag twice: {list(value)}")


def _tuple(value: Any) -> tuple:
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        return (value,)
    return tuple(value)


def _fee_threshold(value: Any) -> Any:
    return None if value == "fee" else value


def _optional_tuple(value: Any) -> tuple | None:
    return None if value is None else _tuple(value)


def _from_mapping(cls: type, values: Mapping[str, Any], where: str, *, strict: bool) -> Any:
    """Build ``cls`` from the known keys; an unknown key is refused (``strict``) or logged."""
    known = {a.name for a in attrs.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):  # sub-tables ([plugins.ensemble.train], ...) belong elsewhere
            continue
        if key not in known:
            message = f"{where}: unknown setting {key!r} (known: {', '.join(sorted(known))})"
            if strict:
                raise ConfigError(message)
            if (cls, key) not in _WARNED:  # once per process: live trading asks for a signal every candle
                _WARNED.add((cls, key))
                log.warning("%s; ignored", message)
            continue
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _windows(instance: Any, attribute: attrs.Attribute, value: tuple[int, ...]) -> None:
    check_windows(value)  # the feature engineer's own rule


@frozen
class EnsembleParams:
    """Training settings (``[plugins.ensemble.train]``, ``--param KEY=VALUE``; ``--epochs`` sets ``hgb_max_iter``).

    Data keys are those of the deep-learning plugins, so every model learns the same
    target from the same split. The ensemble averages the probabilities of
    ``members`` (soft voting, optionally ``weights``) and calibrates the average on
    the validation rows (``calibration``).
    """

    # --- data: features, labels, split (same keys and defaults as dl_lstm / dl_transformer)
    windows: tuple[int, ...] = field(default=DEFAULT_WINDOWS, converter=_tuple, validator=_windows)
    val_fraction: float = field(default=0.15, validator=number(0.0, 0.5, low_open=True))
    test_fraction: float = field(default=0.15, validator=number(0.0, 0.5, low_open=True))
    embargo: int = field(default=0, validator=integer(0))
    label_horizon: int = field(default=1, validator=integer(1))
    #: Log return the next close(s) must beat to count as "up": 0 (the default) labels the direction;
    #: ``"fee"`` (stored as ``None``) uses the round trip of ``fee_rate``, as the deep-learning plugins do.
    label_threshold: float | None = field(default=0.0, converter=_fee_threshold,
                                          validator=optional(number(0.0)))
    fee_rate: float = field(default=0.001, validator=number(0.0, 1.0))
    label_kind: str = field(default="binary", validator=one_of("binary", "ternary"))
    scaler: str = field(default="zscore", validator=one_of("zscore", "robust"))
    scaler_clip: float | None = field(default=10.0, validator=optional(number(0.0, low_open=True)))
    max_fill_bars: int = field(default=5, validator=integer(0))
    # --- the ensemble
    members: tuple[str, ...] = field(default=("hgb", "extra_trees", "logistic"), converter=_tuple, validator=_members)
    weights: tuple[float, ...] | None = field(default=None, converter=_optional_tuple, validator=_weights)
    #: Lagged copies of every feature (``lags = [1]`` adds the previous row's features).
    lags: tuple[int, ...] = field(default=(), converter=_tuple, validator=_lags)
    calibration: str = field(default="sigmoid", validator=one_of("sigmoid", "isotonic"))
    hgb_max_iter: int = field(default=200, validator=integer(1))
    hgb_learning_rate: float = field(default=0.05, validator=number(0.0, 1.0, low_open=True))
    hgb_max_leaf_nodes: int = field(default=15, validator=integer(2))
    hgb_min_samples_leaf: int = field(default=100, validator=integer(1))
    hgb_l2_regularization: float = field(default=1.0, validator=number(0.0))
    trees: int = field(default=100, validator=integer(1))
    tree_max_depth: int = field(default=10, validator=integer(1))
    tree_min_samples_leaf: int = field(default=100, validator=integer(1))
    logistic_c: float = field(default=0.05, validator=number(0.0, low_open=True))
    #: Class weights "balanced" for the forests and the logistic regression, so a rare class is not
    #: ignored; calibration restores the true frequencies.
    balanced: bool = field(default=True, validator=boolean)
    #: Threads for training (``None``: all cores). Predicting a few rows always uses one.
    threads: int | None = field(default=None, validator=optional(integer(1)))

    def __attrs_post_init__(self) -> None:
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10% of the rows for training")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> EnsembleParams:
        values = dict(values)
        epochs = values.pop("epochs", None)
        if epochs is not None and "hgb_max_iter" not in values:
            values["hgb_max_iter"] = epochs
        return _from_mapping(cls, values, "[plugins.ensemble.train]", strict=True)

    def member_weights(self) -> list[float] | None:
        return None if self.weights is None else [float(w) for w in self.weights]

    def label_definition(self) -> Any:
        from trader.features import LabelDefinition

        try:
            return LabelDefinition.from_settings(self.label_threshold, self.fee_rate, self.label_horizon, self.label_kind)
        except ValueError as exc:
            raise ConfigError(f"[plugins.ensemble.train] label settings: {exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.asdict(self).items()}


def signal_thresholds(values: Mapping[str, Any]) -> SignalThresholds:
    """``[plugins.ensemble]``'s signal keys, by the rule every probability model shares
    (:class:`trader.probability_signals.SignalThresholds`); ``ConfigError`` naming the table."""
    # The run engine may share this table with settings of its own, so unknown keys are only logged.
    return _from_mapping(SignalThresholds, values, "[plugins.ensemble]", strict=False)


def _train(name: str, kind: str, default: Any = None, help: str = "", **bounds: Any) -> ParamSpec:
    return ParamSpec(name, kind, default, help=help, section="train", **bounds)


#: Every key of ``[plugins.ensemble]`` and ``[plugins.ensemble.train]``, as the core checks them (the
#: classes above still check what depends on several keys, such as one weight per member).
PARAMS = (
    *THRESHOLD_PARAMS,
    _train("windows", "int", DEFAULT_WINDOWS, "windows of the core features", low=2, many=True),
    _train("val_fraction", "float", 0.15, "validation share of the rows (above 0)", low=0.0, high=0.5),
    _train("test_fraction", "float", 0.15, "held-out test share of the rows (above 0)", low=0.0, high=0.5),
    _train("embargo", "int", 0, "rows dropped after each split boundary", low=0),
    _train("label_horizon", "int", 1, "bars ahead the label looks", low=1),
    _train("label_threshold", "float", 0.0, 'log return an "up" must beat; "fee": the round trip of fee_rate',
           low=0.0, choices=("fee",)),
    _train("fee_rate", "float", 0.001, 'fee per side, for label_threshold = "fee"', low=0.0, high=1.0),
    _train("label_kind", "choice", "binary", "two classes, or three with a flat one", choices=("binary", "ternary")),
    _train("scaler", "choice", "zscore", "feature scaling fit on the training rows", choices=("zscore", "robust")),
    _train("scaler_clip", "float", 10.0, "scaled values are clipped to +-this (above 0)", low=0.0),
    _train("max_fill_bars", "int", 5, "longest gap of missing candles filled in", low=0),
    _train("members", "choice", ("hgb", "extra_trees", "logistic"), "the models averaged", choices=MEMBERS, many=True),
    _train("weights", "float", None, "one weight per member (default: equal)", low=0.0, many=True),
    _train("lags", "int", (), "lagged copies of every feature", low=1, high=50, many=True),
    _train("calibration", "choice", "sigmoid", "calibration on the validation rows", choices=("sigmoid", "isotonic")),
    _train("hgb_max_iter", "int", 200, "gradient-boosting iterations", low=1),
    _train("epochs", "int", None, "sets hgb_max_iter when that is not given (--epochs)", low=1),
    _train("hgb_learning_rate", "float", 0.05, "gradient-boosting learning rate (above 0)", low=0.0, high=1.0),
    _train("hgb_max_leaf_nodes", "int", 15, low=2),
    _train("hgb_min_samples_leaf", "int", 100, low=1),
    _train("hgb_l2_regularization", "float", 1.0, low=0.0),
    _train("trees", "int", 100, "trees per forest", low=1),
    _train("tree_max_depth", "int", 10, low=1),
    _train("tree_min_samples_leaf", "int", 100, low=1),
    _train("logistic_c", "float", 0.05, "inverse L2 strength of the logistic regression (above 0)", low=0.0),
    _train("balanced", "bool", True, "balanced class weights"),
    _train("threads", "int", None, "threads for training (default: all cores)", low=1),
)
