"""Which model each market of a basket uses.

A basket run looks, for each market, for the newest verified model of the strategy trained
for that market and timeframe (``trader train --plugin NAME --symbol S``). Pooled models
(one model trained on several markets) are added by :func:`load_basket_models` too once
trained (see ``docs/portfolios.md``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trader.errors import ModelNotFoundError, train_command

if TYPE_CHECKING:
    from trader.strategy import Strategy

__all__ = ["BasketModels", "load_basket_models"]


@attrs.frozen
class BasketModels:
    """The model of each market (``models[symbol]``), the version it came from and the markets
    each model was trained on; ``mismatched`` lists markets traded with a model not trained on them."""

    models: dict[str, Any]
    versions: dict[str, str]
    trained_on: dict[str, tuple[str, ...]]
    mismatched: tuple[str, ...] = ()

    def describe(self) -> dict[str, Any]:
        return {
            "versions": dict(self.versions),
            "trained_on": {s: list(m) for s, m in self.trained_on.items()},
            "mismatched": list(self.mismatched),
        }


def load_basket_models(strategy: Strategy, models_dir: Path, symbols: Sequence[str], timeframe: str,
                       version: str | None = None) -> BasketModels:
    """The verified model of each market; :class:`ModelNotFoundError` names a market that has none."""
    from trader.models import ModelPersistence

    store = ModelPersistence(Path(models_dir))
    models: dict[str, Any] = {}
    versions: dict[str, str] = {}
    trained_on: dict[str, tuple[str, ...]] = {}
    for symbol in symbols:
        loaded = store.load(strategy, symbol, timeframe, version=version)
        if loaded is None:
            raise ModelNotFoundError(
                f"no trained {strategy.name} model for {symbol} {timeframe}; train one with: "
                f"{train_command(strategy.name, symbol, timeframe)}"
            )
        models[symbol] = loaded.model
        versions[symbol] = str(loaded.version)
        markets = loaded.manifest.get("markets") or [loaded.manifest.get("symbol", symbol)]
        trained_on[symbol] = tuple(str(m) for m in markets)
    mismatched = tuple(s for s in symbols if s not in trained_on[s])
    return BasketModels(models, versions, trained_on, mismatched)
