"""Hook specifications: the contract between the trader core and its plugins.

A plugin is a module or object with functions decorated by ``trader.hookimpl``
whose names match the specs below. It is found through the ``trader.plugins``
entry-point group; the entry point's name is the plugin's name.

A plugin that implements ``trader_strategy_info`` is a *strategy*. The strategy
hooks (``trader_strategy_info``, ``trader_generate_signals``, ``trader_train``,
``trader_save_model``, ``trader_load_model``) are only ever called on the one
strategy being run; strategies never see each other's calls. The risk and
persistence hooks are called on the core, on the running strategy and on
plugins that are not strategies.

``trader run`` calls a strategy's hooks in the strategy's own worker process
(``--isolation process``, the default): its ``trader_audit_order`` runs there and its
verdicts come back as data; its ``trader_state_store`` is not called (the engine opens
the store through the core and the plugins that are not strategies).

Hook arguments only grow: an implementation names only the arguments it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from trader.engine.store import StateStore
    from trader.types import (
        AuditContext,
        BasketRequest,
        OrderRequest,
        PortfolioSnapshot,
        RiskLimits,
        RiskVerdict,
        Signal,
        SignalRequest,
        StrategyInfo,
        TrainRequest,
        TrainResult,
    )

__all__ = [
    "hookspec",
    "hookimpl",
    "PROJECT_NAME",
    "trader_strategy_info",
    "trader_generate_signals",
    "trader_generate_basket_signals",
    "trader_train",
    "trader_save_model",
    "trader_load_model",
    "trader_audit_order",
    "trader_state_store",
]

PROJECT_NAME = "trader"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------- strategy


@hookspec(firstresult=True)
def trader_strategy_info() -> StrategyInfo:
    """Describe the strategy: name, version, description, timeframes, warm-up bars and
    default risk limits.

    :return: a :class:`trader.types.StrategyInfo` whose ``name`` equals the plugin's
        entry-point name.

    Implementing this hook makes a plugin a strategy. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def trader_generate_signals(request: SignalRequest) -> Sequence[Signal]:
    """Decide what to do at each requested candle.

    :param request: candles up to the last closed one, the core's features, the rows
        ``request.at`` that want a signal, the loaded model (or ``None``), the
        strategy's own persisted state and its ``[plugins.NAME]`` parameters.
    :return: one :class:`trader.types.Signal` per entry of ``request.at``, in order.

    The signal for row ``i`` may only depend on rows ``<= i`` (``trader check``
    verifies this). Live trading asks for one row; backtests ask for all rows at
    once, so vectorise. An exception or an invalid signal is counted by the
    circuit breaker and never traded. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def trader_generate_basket_signals(request: BasketRequest) -> Sequence[Mapping[str, Signal]]:
    """Decide for every market of a basket at once (a cross-sectional strategy).

    :param request: each market's candles and features up to the last requested time, the
        basket's timeline, the positions ``request.at`` on it that want signals, the model,
        the strategy's persisted state and its ``[plugins.NAME]`` parameters.
    :return: one mapping per entry of ``request.at``, in order, from symbol to
        :class:`trader.types.Signal`. A market left out holds; a signal for a market that has
        no candle at that time is not traded (it waits for its market to trade).

    Only a strategy run on several markets is asked; on one market, or when a strategy does
    not implement it, the core calls ``trader_generate_signals`` once per market. The
    answer for ``at[j]`` may only use candles opened at or before ``request.timestamps[at[j]]``.
    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def trader_train(request: TrainRequest) -> TrainResult:
    """Train the strategy's model on ``request.candles``.

    :param request: the candles, the user's parameters (``--epochs`` and
        ``[plugins.NAME.train]``) and the seed.
    :return: a :class:`trader.types.TrainResult` with the model object and what its
        manifest records (metrics, architecture, feature names, scaler, label).

    Strategies without a model do not implement it. Stops at first non-None result.
    """


@hookspec(firstresult=True)
def trader_save_model(model: Any, directory: Path) -> Sequence[str]:
    """Write ``model``'s weights into ``directory`` as data (safetensors, JSON, skops),
    never as pickled code.

    :param model: the object that ``trader_train`` returned.
    :param directory: an empty folder; the core writes ``manifest.json`` beside the files.
    :return: the names of the files written; the core records each file's sha256.

    Stops at first non-None result.
    """


@hookspec(firstresult=True)
def trader_load_model(directory: Path, manifest: dict[str, Any]) -> Any:
    """Rebuild the model from the files ``trader_save_model`` wrote.

    :param directory: the version's folder; every file listed in the manifest has
        already passed its sha256 check.
    :param manifest: the parsed ``manifest.json`` (architecture, feature names, ...).
    :return: the model object passed to ``trader_generate_signals`` as ``request.model``.

    Raise :class:`trader.errors.ArtifactError` when the files do not fit the
    manifest (wrong shapes or feature count). Stops at first non-None result.
    """


# --------------------------------------------------------------------------- risk


@hookspec
def trader_audit_order(
    order: OrderRequest,
    portfolio: PortfolioSnapshot,
    limits: RiskLimits,
    context: AuditContext,
) -> RiskVerdict | Sequence[RiskVerdict] | None:
    """Audit a proposed order before it reaches the broker.

    :param order: the proposed order.
    :param portfolio: the strategy's cash, positions and equity marks.
    :param limits: the strategy's effective risk limits (defaults from its
        metadata, overridden by ``[plugins.NAME.risk]``).
    :param context: the feed's clock, the trading status and breaker counters.
    :return: one verdict, several, or ``None`` to abstain.

    The core's own rules run first, on the audit's own copies; then each implementation
    registered when the run started is called on fresh copies of its own (wrappers are
    never called). The order goes through only if no verdict denies it; approvals are
    ignored. A verdict may ask for a stricter :class:`trader.types.TradingStatus`, never
    a looser one.
    """


# --------------------------------------------------------------------------- persistence


@hookspec(firstresult=True)
def trader_state_store(namespace: str, directory: Path) -> StateStore | None:
    """Open the state store of one strategy namespace.

    :param namespace: the strategy's name; a store reaches only its own namespace.
    :param directory: ``TRADER_HOME/strategies/<namespace>``, created by the core.
    :return: a :class:`trader.engine.StateStore` (every member of the protocol; the core
        refuses a store that lacks one, naming it) whose ``namespace`` is ``namespace``
        (the core refuses any other), or ``None`` to leave it to the next plugin. The
        core's SQLite store answers last, so a plugin can replace it.

    Stops at first non-None result.
    """
