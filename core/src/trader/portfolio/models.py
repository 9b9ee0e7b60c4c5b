"""Which model each market of a basket uses.

For each market of the basket, the first of these that exists (the newest verified version,
or the version ``--model-version vN`` pins):

1. the *pooled* model trained on exactly the basket's markets
   (``trader train --plugin NAME --symbol A --symbol B``, stored as ``A+B``);
2. the market's own model (``trader train --plugin NAME --symbol A``);
3. a pooled model whose markets include the market (the newest such, by creation time).

``--model-version vN@SYMBOL`` (or ``vN@A+B`` for a pooled model) pins one stored model for
every market instead. A market traded by a model that was not trained on it is listed in
``mismatched``, and :meth:`BasketModels.warning` says so in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from trader.errors import ConfigError, ModelNotFoundError, train_command

if TYPE_CHECKING:
    from trader.models import LoadedModel, ModelPersistence
    from trader.strategy import Strategy

__all__ = ["BasketModels", "load_basket_models", "parse_model_pin"]


@attrs.frozen
class BasketModels:
    """The model of each market (``models[symbol]``), the version it came from and the markets
    each model was trained on; ``mismatched`` lists markets traded with a model not trained on them.
    ``sources[symbol]`` is the symbol the model is stored under (``A+B`` for a pooled model)."""

    models: dict[str, Any]
    versions: dict[str, str]
    trained_on: dict[str, tuple[str, ...]]
    mismatched: tuple[str, ...] = ()
    sources: dict[str, str] = attrs.field(factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "versions": dict(self.versions),
            "models": dict(self.sources),
            "trained_on": {s: list(m) for s, m in self.trained_on.items()},
            "mismatched": list(self.mismatched),
        }

    def warning(self, strategy: str) -> str | None:
        """One line naming each model that trades markets it was not trained on, or ``None``."""
        if not self.mismatched:
            return None
        by_model: dict[tuple[str, str], list[str]] = {}
        for symbol in self.mismatched:
            by_model.setdefault((self.sources.get(symbol, symbol), self.versions[symbol]), []).append(symbol)
        parts = [f"model {source} {version} (trained on {', '.join(self.trained_on[markets[0]])}) trades "
                 f"{', '.join(markets)}" for (source, version), markets in by_model.items()]
        return f"{strategy}: {'; '.join(parts)}, which it was not trained on"


def parse_model_pin(version: str | None) -> tuple[str | None, str | None]:
    """``"v3"`` -> ``("v3", None)``; ``"v3@BTC/USDT"`` -> ``("v3", "BTC/USDT")``; ``"v2@A/USDT+B/USDT"`` pins a
    pooled model (its markets in any order); ``None``/``"latest"`` -> ``(None, None)``."""
    from trader.data.frame import check_symbol
    from trader.errors import DataError
    from trader.models import BASKET_SEPARATOR, basket_symbol, parse_version

    if version is None:
        return None, None
    text, at, where = str(version).strip().partition("@")
    number = None if text.lower() == "latest" else f"v{parse_version(text)}"
    if not at:
        return number, None
    try:
        markets = [check_symbol(s) for s in where.split(BASKET_SEPARATOR)]
    except DataError as exc:
        raise ConfigError(f"--model-version {str(version)[:80]!r}: {exc}") from None
    return number, basket_symbol(markets) if len(markets) > 1 else markets[0]


def load_basket_models(strategy: Strategy, models_dir: Path, symbols: Sequence[str], timeframe: str,
                       version: str | None = None) -> BasketModels:
    """The verified model of each market (see the module docstring); :class:`ModelNotFoundError`
    names a market that has none. A model serving several markets is loaded once."""
    from trader.models import ModelPersistence, basket_symbol

    store = ModelPersistence(Path(models_dir))
    number, pinned = parse_model_pin(version)
    cache: dict[str, LoadedModel | None] = {}

    def load(symbol: str) -> LoadedModel | None:
        if symbol not in cache:
            try:
                cache[symbol] = store.load(strategy, symbol, timeframe, version=number)
            except ModelNotFoundError:
                if pinned is not None:
                    raise
                cache[symbol] = None  # a pinned version this folder lacks: look further
        return cache[symbol]

    chosen: dict[str, tuple[str, LoadedModel]] = {}
    if pinned is not None:
        loaded = load(pinned)
        if loaded is None:
            raise ModelNotFoundError(f"no trained {strategy.name} model for {pinned} {timeframe}; train one with: "
                                     f"{train_command(strategy.name, pinned, timeframe)}")
        chosen = {s: (pinned, loaded) for s in symbols}
    else:
        exact = basket_symbol(symbols)
        pooled = load(exact) if len(set(symbols)) > 1 else None
        for symbol in symbols:
            if pooled is not None:
                chosen[symbol] = (exact, pooled)
                continue
            own = load(symbol)
            if own is not None:
                chosen[symbol] = (symbol, own)
                continue
            source = _pooled_with(store, strategy.name, symbol, timeframe, number)
            found = load(source) if source is not None else None
            if found is None:
                pin = f" version {number}" if number else ""
                raise ModelNotFoundError(
                    f"no trained {strategy.name} model{pin} for {symbol} {timeframe} (none of its own, none pooled with "
                    f"it); train one with: {train_command(strategy.name, symbol, timeframe)}"
                )
            chosen[symbol] = (str(source), found)
    models = {s: loaded.model for s, (_, loaded) in chosen.items()}
    versions = {s: str(loaded.version) for s, (_, loaded) in chosen.items()}
    sources = {s: source for s, (source, _) in chosen.items()}
    trained_on = {s: _markets(loaded) for s, (_, loaded) in chosen.items()}
    mismatched = tuple(s for s in symbols if s not in trained_on[s])
    return BasketModels(models, versions, trained_on, mismatched, sources)


def _markets(loaded: LoadedModel) -> tuple[str, ...]:
    markets = loaded.manifest.get("markets") or [loaded.manifest.get("symbol", "")]
    return tuple(str(m) for m in markets)


def _pooled_with(store: ModelPersistence, plugin: str, symbol: str, timeframe: str, number: str | None) -> str | None:
    """The symbol of the newest pooled model (of version ``number`` when pinned) trained on ``symbol``."""
    best: tuple[str, str] | None = None
    for v in store.list(plugin):
        if v.problem or v.timeframe != timeframe or symbol not in v.markets or (number and v.version != number):
            continue
        if best is None or (v.created_at, v.symbol) > best:
            best = (v.created_at, v.symbol)
    return best[1] if best else None
