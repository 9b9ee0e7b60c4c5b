"""Validated value types shared by the core and the plugins.

Every class here is frozen and validated on construction: an invalid value
(NaN or negative price, unknown side, size out of range) cannot exist, and the
``ValueError`` names the offending field.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

import attrs
from attrs import field, frozen

from trader.validators import finite, integer, non_empty_str, number, optional

__all__ = [
    "Side",
    "SignalAction",
    "OrderType",
    "TradingStatus",
    "Candle",
    "Signal",
    "OrderRequest",
    "Fill",
    "Position",
    "RiskLimits",
    "RiskReason",
    "RiskVerdict",
    "StrategyInfo",
    "ParamSpec",
    "PARAM_KINDS",
    "PARAM_SECTIONS",
    "PortfolioSnapshot",
    "AuditContext",
    "SignalRequest",
    "BasketRequest",
    "TrainRequest",
    "TrainResult",
    "Rows",
]


# --------------------------------------------------------------------------- validators


# One rule per kind of field, shared with every value type of the core (trader.validators).
_finite = finite
_positive = number(0, low_open=True)
_non_negative = number(0)
_unit_interval = number(0, 1)
_open_unit = number(0, 1, low_open=True)
_optional = optional
_non_empty_str = non_empty_str
_int_at_least = integer


_E = TypeVar("_E", bound=enum.Enum)


def _member(cls: type[_E], value: object) -> _E:
    """``value`` as a member of ``cls``: the member itself or its value in any case."""
    if isinstance(value, cls):
        return value
    try:
        return cls(str(value).lower())
    except ValueError:
        choices = ", ".join(m.value for m in cls)
        raise ValueError(f"unknown {cls.__name__} {value!r} (choose from {choices})") from None


# Named converters, one per enum: attrs passes their parameter type to the constructor, so a
# plugin author's checker sees ``Signal(action: SignalAction | str, ...)``.
def _signal_action(value: SignalAction | str) -> SignalAction:
    return _member(SignalAction, value)


def _side(value: Side | str) -> Side:
    return _member(Side, value)


def _order_type(value: OrderType | str) -> OrderType:
    return _member(OrderType, value)


def _status(value: TradingStatus | str) -> TradingStatus:
    return _member(TradingStatus, value)


def _optional_status(value: TradingStatus | str | None) -> TradingStatus | None:
    return None if value is None else _member(TradingStatus, value)


def _strs(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


def _ints(value: Iterable[int]) -> tuple[int, ...]:
    return tuple(value)


def _values(value: Iterable[Any]) -> tuple[Any, ...]:
    return tuple(value)


def _reasons(value: Iterable[RiskReason]) -> tuple[RiskReason, ...]:
    return tuple(value)


def _param_tuple(value: Iterable[ParamSpec]) -> tuple[ParamSpec, ...]:
    return tuple(value)


#: The rows of :attr:`SignalRequest.at`: a one-dimensional int64 array (ascending row positions).
Rows: TypeAlias = "npt.NDArray[np.int64]"


def _rows(value: Sequence[int] | npt.NDArray[np.integer[Any]]) -> Rows:
    """``at`` as the one type every caller passes: a 1-D int64 array (a list or range is converted)."""
    import numpy as np

    rows = np.array(value, dtype=np.int64)  # a copy: a strategy that writes into it never reaches the caller's array
    if rows.ndim != 1:
        raise ValueError(f"at must be one-dimensional row positions, got shape {rows.shape}")
    return rows


def _own_params(value: Mapping[str, Any]) -> dict[str, Any]:
    """The request's own copy of its parameters (lists too): what a strategy writes into them never
    reaches the caller's settings, another market or a later call."""
    return {key: list(item) if isinstance(item, list) else item for key, item in dict(value).items()}


# --------------------------------------------------------------------------- enums


class Side(str, enum.Enum):
    BUY = "buy"
    SELL = "sell"


class SignalAction(str, enum.Enum):
    """What a strategy wants: BUY raises the position towards a target, SELL reduces it."""

    BUY = "buy"
    SELL = "sell"
    HOLD = "hold"


class OrderType(str, enum.Enum):
    MARKET = "market"
    LIMIT = "limit"


class TradingStatus(str, enum.Enum):
    """Risk state of one strategy: ACTIVE trades, REDUCING only lowers exposure, HALTED trades nothing."""

    ACTIVE = "active"
    REDUCING = "reducing"
    HALTED = "halted"


# --------------------------------------------------------------------------- market data


@frozen
class Candle:
    """One closed OHLCV bar; ``timestamp`` is the bar's open time in UTC milliseconds."""

    timestamp: int = field(validator=_int_at_least(0))
    open: float = field(validator=_positive)
    high: float = field(validator=_positive)
    low: float = field(validator=_positive)
    close: float = field(validator=_positive)
    volume: float = field(validator=_non_negative)

    def __attrs_post_init__(self) -> None:
        if self.high < max(self.open, self.close, self.low):
            raise ValueError(f"high must be >= open, close and low, got high={self.high}")
        if self.low > min(self.open, self.close):
            raise ValueError(f"low must be <= open and close, got low={self.low}")


# --------------------------------------------------------------------------- signals and orders


@frozen
class Signal:
    """A strategy's decision for one closed candle.

    ``size`` is, for BUY, the target position as a fraction of the strategy's maximum
    position (``RiskLimits.max_position_fraction`` of equity); for SELL, the fraction of
    the current position to close. ``probability`` is the model's probability that the
    price goes up, where the strategy has one (used by evaluation).
    """

    action: SignalAction = field(converter=_signal_action)
    confidence: float = field(default=1.0, validator=_unit_interval)
    size: float = field(default=1.0, validator=_unit_interval)
    probability: float | None = field(default=None, validator=_optional(_unit_interval))
    reason: str = ""

    @classmethod
    def hold(cls, reason: str = "") -> Signal:
        """A HOLD that claims nothing: confidence 0 and size 0 (a warm-up row, no opinion)."""
        return cls(SignalAction.HOLD, confidence=0.0, size=0.0, reason=reason)


@frozen
class OrderRequest:
    """An order a strategy proposes; it reaches a broker only after the risk audit approves it."""

    strategy: str = field(validator=_non_empty_str)
    symbol: str = field(validator=_non_empty_str)
    side: Side = field(converter=_side)
    quantity: float = field(validator=_positive)
    price: float = field(validator=_positive)  # reference price (last close) used for notional checks
    client_order_id: str = field(validator=_non_empty_str)
    timestamp: int = field(validator=_int_at_least(0))
    order_type: OrderType = field(default=OrderType.MARKET, converter=_order_type)
    limit_price: float | None = field(default=None, validator=_optional(_positive))
    reduce_only: bool = False

    @property
    def notional(self) -> float:
        return self.quantity * self.price


@frozen
class Fill:
    """An execution of (part of) an order. ``fee`` is in the quote currency."""

    client_order_id: str = field(validator=_non_empty_str)
    symbol: str = field(validator=_non_empty_str)
    side: Side = field(converter=_side)
    quantity: float = field(validator=_positive)
    price: float = field(validator=_positive)
    fee: float = field(default=0.0, validator=_non_negative)
    timestamp: int = field(default=0, validator=_int_at_least(0))
    trade_id: str = ""

    @property
    def notional(self) -> float:
        return self.quantity * self.price


@frozen
class Position:
    """A spot position: quantity held and its average entry price."""

    symbol: str = field(validator=_non_empty_str)
    quantity: float = field(default=0.0, validator=_non_negative)
    avg_price: float = field(default=0.0, validator=_non_negative)
    realized_pnl: float = field(default=0.0, validator=_finite)


# --------------------------------------------------------------------------- risk


@frozen
class RiskLimits:
    """One strategy's risk budget. Fractions are of equity; notionals are in the quote currency."""

    max_position_fraction: float = field(default=0.5, validator=_open_unit)
    max_position_notional: float = field(default=50_000.0, validator=_positive)
    max_order_notional: float = field(default=10_000.0, validator=_positive)
    daily_loss_limit: float = field(default=0.05, validator=_open_unit)
    max_drawdown: float = field(default=0.20, validator=_open_unit)
    max_consecutive_losses: int = field(default=5, validator=_int_at_least(1))
    max_errors: int = field(default=5, validator=_int_at_least(1))
    error_window_s: float = field(default=3600.0, validator=_positive)
    stale_after_bars: float = field(default=2.0, validator=_positive)
    max_inference_ms: float = field(default=250.0, validator=_positive)
    max_model_failures: int = field(default=3, validator=_int_at_least(1))
    #: Portfolio limits (a strategy trading several markets from one account): the value of all
    #: positions after an order, as a fraction of equity, and how many markets may hold a position.
    max_gross_exposure: float = field(default=1.0, validator=_open_unit)
    max_open_positions: int = field(default=20, validator=_int_at_least(1))

    def tightened(self, **overrides: Any) -> RiskLimits:
        """Return limits where each override may only make the budget tighter, never looser."""
        values = attrs.asdict(self)
        for name, value in overrides.items():
            if name not in values:
                raise ValueError(f"unknown risk limit {name!r} (known: {', '.join(values)})")
            # A longer error window counts more errors: tighter is larger. Every other limit is a cap.
            values[name] = max(values[name], value) if name == "error_window_s" else min(values[name], value)
        return RiskLimits(**values)

    def with_overrides(self, overrides: Mapping[str, Any]) -> RiskLimits:
        """Return limits with user overrides from ``[plugins.NAME.risk]`` applied (validated)."""
        values = attrs.asdict(self)
        for name, value in overrides.items():
            if name not in values:
                raise ValueError(f"unknown risk limit {name!r} (known: {', '.join(values)})")
            values[name] = value
        return RiskLimits(**values)


@frozen
class RiskReason:
    """Why a rule denied an order: a stable ``code`` (e.g. ``NOTIONAL_EXCEEDS_MAX_PER_ORDER``) and text."""

    code: str = field(validator=_non_empty_str)
    message: str = ""


@frozen
class RiskVerdict:
    """One rule set's answer about an order. ``status`` asks for a state change (never a relaxation)."""

    approved: bool
    rule: str = field(validator=_non_empty_str)
    reasons: tuple[RiskReason, ...] = field(default=(), converter=_reasons)
    status: TradingStatus | None = field(default=None, converter=_optional_status)

    def __attrs_post_init__(self) -> None:
        if not self.approved and not self.reasons:
            raise ValueError("reasons must name at least one reason when an order is denied")

    @classmethod
    def approve(cls, rule: str) -> RiskVerdict:
        return cls(True, rule)

    @classmethod
    def deny(cls, rule: str, code: str, message: str = "", status: TradingStatus | str | None = None) -> RiskVerdict:
        return cls(False, rule, (RiskReason(code, message),), status)


@frozen
class PortfolioSnapshot:
    """One strategy's portfolio at a point in time, as the risk audit sees it."""

    cash: float = field(validator=_non_negative)
    equity: float = field(validator=_non_negative)
    positions: Mapping[str, Position] = field(factory=dict)
    peak_equity: float = field(default=0.0, validator=_non_negative)
    day_start_equity: float = field(default=0.0, validator=_non_negative)
    #: The price each position is valued at (its market's last traded close); a position
    #: without a mark is valued at its average price.
    marks: Mapping[str, float] = field(factory=dict)

    def position(self, symbol: str) -> Position:
        return self.positions.get(symbol) or Position(symbol)

    def position_value(self, symbol: str) -> float:
        """The value of ``symbol``'s position at its mark."""
        held = self.positions.get(symbol)
        if held is None or held.quantity <= 0:
            return 0.0
        return held.quantity * self.marks.get(symbol, held.avg_price)

    def gross_exposure(self) -> float:
        """The value of every position at its mark (spot: long only)."""
        return sum(self.position_value(symbol) for symbol in self.positions)

    def open_positions(self) -> int:
        """How many markets hold a position."""
        return sum(1 for p in self.positions.values() if p.quantity > 0)


@frozen
class AuditContext:
    """What the risk rules know besides the order and the portfolio."""

    strategy: str = field(validator=_non_empty_str)
    now: int = field(validator=_int_at_least(0))  # ms, the clock of the feed
    status: TradingStatus = field(default=TradingStatus.ACTIVE, converter=_status)
    timeframe_ms: int = field(default=60_000, validator=_int_at_least(1))
    last_candle_ts: int | None = None
    consecutive_losses: int = 0
    recent_errors: int = 0
    model_failures: int = 0
    last_inference_ms: float | None = None


# --------------------------------------------------------------------------- strategy plugin contract


#: What a declared parameter holds (see :class:`ParamSpec`).
PARAM_KINDS = ("int", "float", "bool", "str", "choice")
#: Where a declared parameter is set: ``""`` is ``[plugins.NAME]``, ``"train"`` is ``[plugins.NAME.train]``.
PARAM_SECTIONS = ("", "train")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


@frozen
class ParamSpec:
    """One parameter a strategy declares: a key of ``[plugins.NAME]`` (or of its ``train`` sub-table).

    ``kind`` is one of :data:`PARAM_KINDS`; ``many`` makes it a list of such values.
    ``low``/``high`` bound an ``int`` or ``float`` (inclusive; a strategy may still refuse
    more, such as an open edge or a combination of keys); ``choices`` lists a ``choice``'s
    values, or for an ``int``/``float`` the special values it also accepts (``"fee"``).
    ``default`` is checked like a value; ``None`` means the strategy works one out itself.
    ``log`` says a search should sample the range on a log scale (it needs ``low > 0``).
    ``tune`` puts it in the search space ``trader tune`` explores by default (see docs/tuning.md).
    """

    name: str = field()
    kind: str = field(validator=attrs.validators.in_(PARAM_KINDS))
    default: Any = field(default=None, converter=_freeze)
    low: float | None = field(default=None, validator=_optional(_finite))
    high: float | None = field(default=None, validator=_optional(_finite))
    choices: tuple[Any, ...] = field(default=(), converter=_values)
    log: bool = field(default=False, validator=attrs.validators.instance_of(bool))
    help: str = field(default="", validator=attrs.validators.instance_of(str))
    section: str = field(default="", validator=attrs.validators.in_(PARAM_SECTIONS))
    many: bool = field(default=False, validator=attrs.validators.instance_of(bool))
    tune: bool = field(default=False, validator=attrs.validators.instance_of(bool))

    @name.validator
    def _check_name(self, attribute: attrs.Attribute[Any], value: Any) -> None:
        if not isinstance(value, str) or not _PARAM_NAME.fullmatch(value):
            raise ValueError(f"name must be a word of letters, digits and _ (at most 64), got {_shown(value)}")
        if not self.section and value in ("risk", "train", "tune"):
            raise ValueError(f"name {value!r} is a sub-table of [plugins.NAME], not a parameter")
        if not self.section and value in ("symbols", "timeframe"):
            raise ValueError(f"name {value!r} is the core's key of [plugins.NAME] (the markets it trades), not a parameter")

    def __attrs_post_init__(self) -> None:
        numeric = self.kind in ("int", "float")
        if (self.low is not None or self.high is not None) and not numeric:
            raise ValueError(f"{self.name}: low and high bound an int or float, not a {self.kind}")
        if self.kind == "int" and any(isinstance(b, float) for b in (self.low, self.high)):
            raise ValueError(f"{self.name}: the bounds of an int must be integers")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"{self.name}: low {self.low} is above high {self.high}")
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"{self.name}: a choice needs choices")
        if self.choices and not (self.kind == "choice" or numeric):
            raise ValueError(f"{self.name}: choices apply to a choice, int or float, not a {self.kind}")
        for choice in self.choices:
            if isinstance(choice, bool) or not isinstance(choice, (str, int, float)) or choice != choice:
                raise ValueError(f"{self.name}: choices must be text or numbers, got {_shown(choice)}")
        if self.log and not (numeric and self.low is not None and self.low > 0):
            raise ValueError(f"{self.name}: log needs an int or float with low > 0")
        if self.default is not None:
            self.check(self.default)

    def check(self, value: Any) -> Any:
        """*value* as the strategy gets it (an int as a float for a ``float``, a list for ``many``);
        ``ValueError`` saying what is wrong (without the key's name)."""
        if not self.many:
            return self._one(value)
        if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
            raise ValueError(f"must be a list, got {_shown(value)}")
        out = []
        for i, item in enumerate(value):
            try:
                out.append(self._one(item))
            except ValueError as exc:
                raise ValueError(f"item {i + 1} {exc}") from None
        return out

    def _one(self, value: Any) -> Any:
        if self.choices and value in self.choices and not isinstance(value, bool):
            return value
        kind = self.kind
        if kind == "bool":
            if not isinstance(value, bool):
                raise ValueError(f"must be true or false, got {_shown(value)}")
            return value
        if kind == "str":
            if not isinstance(value, str):
                raise ValueError(f"must be text, got {_shown(value)}")
            return value
        if kind == "choice":
            raise ValueError(f"must be one of {', '.join(map(str, self.choices))}; got {_shown(value)}")
        also = f" or {' or '.join(map(repr, self.choices))}" if self.choices else ""
        if kind == "int" and (isinstance(value, bool) or not isinstance(value, int)):
            raise ValueError(f"must be a whole number{also}, got {_shown(value)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"must be a number{also}, got {_shown(value)}")
        if not math.isfinite(value):
            raise ValueError(f"must be finite, got {_shown(value)}")
        if (self.low is not None and value < self.low) or (self.high is not None and value > self.high):
            if self.high is None:
                bound = f">= {self.low}"
            elif self.low is None:
                bound = f"<= {self.high}"
            else:
                bound = f"within [{self.low}, {self.high}]"
            raise ValueError(f"must be {bound}{also}, got {_shown(value)}")
        return float(value) if kind == "float" else value


def _param_specs(instance: Any, attribute: attrs.Attribute[Any], value: tuple[Any, ...]) -> None:
    seen: set[tuple[str, str]] = set()
    for spec in value:
        if not isinstance(spec, ParamSpec):
            raise ValueError(f"params must hold ParamSpec values, got {_shown(spec)}")
        if (spec.section, spec.name) in seen:
            raise ValueError(f"params declares {spec.name!r} twice")
        seen.add((spec.section, spec.name))


@frozen
class StrategyInfo:
    """What a strategy plugin says about itself (``trader_strategy_info``)."""

    name: str = field(validator=_non_empty_str)
    version: str = field(validator=_non_empty_str)
    description: str = ""
    timeframes: tuple[str, ...] = field(default=("1m", "5m", "15m", "1h", "4h", "1d"), converter=_strs)
    warmup_bars: int = field(default=0, validator=_int_at_least(0))
    risk_limits: RiskLimits = field(factory=RiskLimits)
    requires_model: bool = False
    #: Windows of the core features the strategy reads; empty means it reads none.
    feature_windows: tuple[int, ...] = field(default=(), converter=_ints)
    #: The keys of ``[plugins.NAME]`` and ``[plugins.NAME.train]`` it reads; empty means it declares
    #: none and gets those tables unchecked (see :func:`trader.params.validate_params`).
    params: tuple[ParamSpec, ...] = field(default=(), converter=_param_tuple, validator=_param_specs)
    #: Whether ``trader_train`` reads ``TrainRequest.markets`` (one model on several markets); the core
    #: refuses ``trader train`` with several ``--symbol`` for a strategy that does not say so.
    pooled_training: bool = False


@frozen
class SignalRequest:
    """Input of ``trader_generate_signals``.

    ``candles`` holds the history up to and including the last closed candle (columns
    ``timestamp`` (ms), ``open``, ``high``, ``low``, ``close``, ``volume``; a
    RangeIndex). ``features`` is the core's feature frame aligned row for row with
    ``candles``, or ``None`` for strategies that use none. ``at`` holds the row
    positions that want a signal, ascending, always as a 1-D int64 numpy array (a list
    given here is converted): the last row in live trading, every row of the range in a
    backtest. A strategy must only use rows ``<= i`` for row ``i``. ``workdir`` is the
    strategy's own writable folder, ``TRADER_HOME/strategies/NAME/plugin``; ``None`` in a
    request built without one.
    """

    strategy: str
    symbol: str
    timeframe: str
    candles: pd.DataFrame
    at: Rows = field(converter=_rows)
    features: pd.DataFrame | None = None
    model: Any = None
    state: Mapping[str, Any] = field(factory=dict)
    params: Mapping[str, Any] = field(factory=dict, converter=_own_params)
    workdir: Path | None = None


def _symbols(value: Iterable[str]) -> tuple[str, ...]:
    symbols = tuple(value)
    if not symbols or len(set(symbols)) != len(symbols):
        raise ValueError(f"symbols must name each market once, got {symbols!r}")
    return symbols


@frozen
class BasketRequest:
    """Input of ``trader_generate_basket_signals``: every market of a basket at once.

    ``timestamps`` is the basket's timeline, the union of its markets' candle open times
    (ms, ascending, 1-D int64). ``candles[symbol]`` holds that market's own candles up to
    the last requested timestamp (no invented bars: a market that did not trade at a time
    has no row for it), ``features[symbol]`` the core's features aligned with them (or
    ``None``). ``model`` is the model every market shares (a pooled model), ``models`` each
    market's own. ``at`` holds the positions in ``timestamps`` that want signals, ascending:
    the last one in live trading, every one of the range in a backtest. The answer for
    ``at[j]`` may only use candles opened at or before ``timestamps[at[j]]``.
    """

    strategy: str
    symbols: tuple[str, ...] = field(converter=_symbols)
    timeframe: str
    timestamps: Rows = field(converter=_rows)
    candles: Mapping[str, pd.DataFrame]
    at: Rows = field(converter=_rows)
    features: Mapping[str, pd.DataFrame | None] = field(factory=dict)
    model: Any = None
    state: Mapping[str, Any] = field(factory=dict)
    params: Mapping[str, Any] = field(factory=dict, converter=_own_params)
    workdir: Path | None = None
    #: Each market's model (``model`` is the one they share, or ``None`` when they differ).
    models: Mapping[str, Any] = field(factory=dict)

    def closes(self) -> pd.DataFrame:
        """Closes on the basket's timeline: one column per market, NaN where it has no candle."""
        import pandas as pd

        columns = {}
        for symbol in self.symbols:
            frame = self.candles[symbol]
            columns[symbol] = pd.Series(frame["close"].to_numpy(), index=frame["timestamp"].to_numpy())
        out = pd.DataFrame(columns).reindex(self.timestamps[: int(self.at[-1]) + 1] if len(self.at) else self.timestamps[:0])
        out.index.name = "timestamp"
        return out


@frozen
class TrainRequest:
    """Input of ``trader_train``: the candles to learn from and the user's parameters."""

    strategy: str
    symbol: str
    timeframe: str
    candles: pd.DataFrame
    params: Mapping[str, Any] = field(factory=dict)
    seed: int = 0
    show_progress: bool = False
    #: Pooled training (``trader train --symbol A --symbol B``): each market's candles by symbol, in
    #: symbol order; ``symbol`` is then the basket's name (``A+B``) and ``candles`` is empty. Only
    #: strategies whose ``StrategyInfo.pooled_training`` is true are ever given it.
    markets: Mapping[str, pd.DataFrame] | None = None


@frozen
class TrainResult:
    """Output of ``trader_train``: the model object and what its manifest records."""

    model: Any
    metrics: Mapping[str, Any] = field(factory=dict)
    architecture: Mapping[str, Any] = field(factory=dict)
    feature_names: tuple[str, ...] = field(default=(), converter=_strs)
    feature_windows: tuple[int, ...] = field(default=(), converter=_ints)
    scaler: Mapping[str, Any] | None = None
    label: Mapping[str, Any] = field(factory=dict)
    history: Mapping[str, Any] = field(factory=dict)
    extra: Mapping[str, Any] = field(factory=dict)
