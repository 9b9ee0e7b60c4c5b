"""Pooled training on a basket, model lookup for baskets, and a basket's walk-forward.

Markets with different histories (one listed later, one with a gap) are stored as real
candle files; training, listing and backtests run as real ``trader`` subprocesses.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from plugin_packages import pip_install, plugin_env, write_plugin

from trader.backtest.walkforward import WalkForwardPlan
from trader.config import load_config
from trader.data.synth import synthetic_candles
from trader.features import FeatureEngineer
from trader.ml.prepare import prepare_pooled_training_data, prepare_training_data
from trader.ml.settings import DataSettings
from trader.models import ModelPersistence
from trader.plugins import TraderPluginManager
from trader.portfolio import align
from trader.portfolio.models import load_basket_models
from trader.portfolio.walkforward import fold_training_frames, run_basket_walk_forward

SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT")
TINY = ("--epochs", "1", "--param", "hidden_size=4", "--param", "head_hidden=0", "--param", "sequence_length=8",
        "--param", "batch_size=128", "--no-progress")
TINY_PARAMS = {"epochs": 1, "hidden_size": 4, "head_hidden": 0, "sequence_length": 8, "batch_size": 128}


def markets(bars: int = 700) -> dict:
    """Three markets with different histories: BBB listed 150 bars later, CCC with a 40-bar gap."""
    a = synthetic_candles("AAA/USDT", "1h", bars, seed=1)
    b = synthetic_candles("BBB/USDT", "1h", bars, seed=2).iloc[150:].reset_index(drop=True)
    c = synthetic_candles("CCC/USDT", "1h", bars, seed=3)
    c = c.drop(index=range(300, 340)).reset_index(drop=True)
    return {"AAA/USDT": a, "BBB/USDT": b, "CCC/USDT": c}


def store_markets(home: Path, frames: dict) -> None:
    from trader.data.store import CandleStore

    store = CandleStore(home)
    for symbol, frame in frames.items():
        store.write("synthetic", symbol, "1h", frame)


# ----------------------------------------------------------------------------- the pooled data


SETTINGS = DataSettings(sequence_length=8, embargo=2, label_horizon=3)


def test_pooled_scaler_statistics_are_those_of_the_pooled_training_rows_only():
    frames = markets()
    pooled = prepare_pooled_training_data(frames, SETTINGS, "1h")
    engineer = FeatureEngineer(windows=SETTINGS.windows, timeframe="1h", max_fill_bars=SETTINGS.max_fill_bars)
    training, everything = [], []
    for symbol in sorted(frames):
        raw = engineer.compute_values(frames[symbol]).T.astype(np.float32)
        cut = prepare_training_data(frames[symbol], SETTINGS, "1h").train_ends[-1]  # each market's own split
        training.append(raw[: cut + 1])
        everything.append(raw)
    rows = np.concatenate(training).astype(np.float64)
    rows = rows[np.isfinite(rows).all(axis=1)]
    state = pooled.scaler.to_dict()
    assert state["n_samples"] == len(rows)
    np.testing.assert_allclose(state["center"], rows.mean(axis=0), rtol=1e-6, atol=1e-9)
    std = rows.std(axis=0)
    expected = np.where(std >= 1e-12, std, 1.0)
    np.testing.assert_allclose(state["scale"], expected, rtol=1e-5, atol=1e-9)
    # validation and test rows would have moved it
    all_rows = np.concatenate(everything).astype(np.float64)
    all_rows = all_rows[np.isfinite(all_rows).all(axis=1)]
    assert not np.allclose(state["center"], all_rows.mean(axis=0), rtol=1e-6)


def test_no_window_crosses_a_market_boundary_and_each_market_is_split_and_purged_on_its_own():
    frames = markets()
    pooled = prepare_pooled_training_data(frames, SETTINGS, "1h")
    length = SETTINGS.sequence_length
    assert list(pooled.markets) == sorted(frames)
    for part in (pooled.train_ends, pooled.val_ends, pooled.test_ends):
        for end in part:
            inside = [s for s, (a, b) in pooled.markets.items() if a <= end - length + 1 and end < b]
            assert len(inside) == 1, f"window ending at row {end} crosses markets"
            window = pooled.timestamps[end - length + 1 : end + 1]
            assert np.all(np.diff(window) == 3_600_000)  # one market's consecutive candles, no gap inside
    for symbol, (a, b) in pooled.markets.items():
        own = prepare_training_data(frames[symbol], SETTINGS, "1h")
        mine = {name: ends[(ends >= a) & (ends < b)] - a for name, ends in
                (("train", pooled.train_ends), ("val", pooled.val_ends), ("test", pooled.test_ends))}
        np.testing.assert_array_equal(mine["train"], own.train_ends)
        np.testing.assert_array_equal(mine["val"], own.val_ends)
        np.testing.assert_array_equal(mine["test"], own.test_ends)
        # the market's last training label (horizon rows ahead, plus the embargo) ends before its first
        # validation window starts, counted in its own rows
        assert mine["train"][-1] + SETTINGS.label_horizon + SETTINGS.embargo < mine["val"][0] - length + 1
        assert len(mine["train"]) > 0 and len(mine["val"]) > 0


# ----------------------------------------------------------------------------- real packages


CANDLES_ONLY = """
    import json

    from trader import Signal, StrategyInfo, TrainResult, hookimpl

    @hookimpl
    def trader_strategy_info():
        return StrategyInfo(name="candles_only", version="1.0", description="trains on request.candles only",
                            requires_model=True)

    @hookimpl
    def trader_train(request):
        return TrainResult(model={"rows": len(request.candles)})

    @hookimpl
    def trader_save_model(model, directory):
        (directory / "model.json").write_text(json.dumps(model))
        return ["model.json"]

    @hookimpl
    def trader_load_model(directory, manifest):
        return json.loads((directory / "model.json").read_text())

    @hookimpl
    def trader_generate_signals(request):
        return [Signal("hold", size=0.0) for _ in request.at]
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    return pip_install(tmp_path_factory.mktemp("site"),
                       [write_plugin(src, "trader-candles-only", "trader_candles_only", "candles_only", CANDLES_ONLY)])


@pytest.mark.slow
def test_a_plugin_without_pooled_training_is_refused_in_one_line(installed, trader_home):
    result = run_trader("train", "--plugin", "candles_only", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT",
                        home=trader_home, env=plugin_env(installed))
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == [lines[-1]] and "'candles_only' cannot train one model on several markets" in lines[-1]
    assert "Traceback" not in result.stderr
    assert not (trader_home / "models").exists() or not any((trader_home / "models").rglob("manifest.json"))
    # one market still trains as before
    one = run_trader("train", "--plugin", "candles_only", "--symbol", "AAA/USDT", "--synthetic-bars", "200", "--json",
                     home=trader_home, env=plugin_env(installed))
    assert one.returncode == 0, one.stderr
    assert "markets" not in json.loads(one.stdout) or not json.loads(one.stdout)["markets"]
    # the shipped ensemble does not pool either; both sequence strategies do
    ensemble = run_trader("train", "--plugin", "ensemble", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT", home=trader_home)
    assert ensemble.returncode == 2 and "'ensemble' cannot train one model on several markets" in ensemble.stderr
    manager = TraderPluginManager(strategies=("dl_lstm", "dl_transformer"))
    assert all(manager.strategy(name).info.pooled_training for name in ("dl_lstm", "dl_transformer"))


# ----------------------------------------------------------------------------- trader subprocesses


@pytest.fixture(scope="module")
def pooled_home(tmp_path_factory) -> Path:
    """A home with the three markets stored and a pooled dl_lstm trained on them (tiny)."""
    home = tmp_path_factory.mktemp("home")
    store_markets(home, markets())
    result = run_trader("train", "--plugin", "dl_lstm", *(x for s in ("CCC/USDT", "AAA/USDT", "BBB/USDT")
                        for x in ("--symbol", s)), *TINY, "--until", "2024-01-27", home=home, timeout=300)
    assert result.returncode == 0, result.stderr
    return home


@pytest.mark.slow
def test_pooled_model_is_stored_once_with_its_markets_in_the_manifest(pooled_home):
    listing = run_trader("models", "list", "--json", home=pooled_home)
    versions = json.loads(listing.stdout)
    assert [(v["symbol"], v["version"], v["markets"]) for v in versions] == [("AAA/USDT+BBB/USDT+CCC/USDT", "v1", list(SYMBOLS))]
    text = run_trader("models", "list", home=pooled_home).stdout
    assert "pooled on 3 markets: AAA/USDT, BBB/USDT, CCC/USDT" in text
    manifest = json.loads(run_trader("models", "show", "--plugin", "dl_lstm", "--symbol", "BBB/USDT", "--symbol",
                                     "AAA/USDT", "--symbol", "CCC/USDT", home=pooled_home).stdout)
    assert manifest["markets"] == list(SYMBOLS)
    verified = run_trader("models", "verify", "--plugin", "dl_lstm", "--symbol", "CCC/USDT", "--symbol", "AAA/USDT",
                          "--symbol", "BBB/USDT", home=pooled_home)
    assert verified.returncode == 0 and "passed every check" in verified.stdout, verified.stderr
    missing = run_trader("models", "verify", "--plugin", "dl_lstm", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT",
                         home=pooled_home)
    assert missing.returncode == 2 and missing.stderr.strip().endswith(
        "train one with: trader train --plugin dl_lstm --symbol AAA/USDT --symbol BBB/USDT --timeframe 1h")
    frames = markets()
    until = 1706313600000  # 2024-01-27: --until applies to every market
    from trader.models import candles_hash

    for symbol in SYMBOLS:
        data = manifest["data"]["markets"][symbol]
        cut = frames[symbol][frames[symbol]["timestamp"] < until].reset_index(drop=True)
        assert data["rows"] == len(cut) and data["end"] < until
        assert data["sha256"] == candles_hash(cut)
        assert manifest["extra"]["split"]["markets"][symbol]["rows"] == len(cut)
    assert manifest["data"]["range"]["rows"] == sum(manifest["data"]["markets"][s]["rows"] for s in SYMBOLS)
    assert (pooled_home / "models" / "dl_lstm" / "AAA-USDT+BBB-USDT+CCC-USDT_1h" / "v1").is_dir()


@pytest.mark.slow
def test_pooled_model_backtests_the_basket_and_a_model_of_other_markets_is_flagged(pooled_home):
    result = run_trader("backtest", "--plugin", "dl_lstm", *(x for s in SYMBOLS for x in ("--symbol", s)),
                        "--from", "2024-01-27", "--json", home=pooled_home, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"]["models"] == dict.fromkeys(SYMBOLS, "AAA/USDT+BBB/USDT+CCC/USDT")
    assert report["model"]["mismatched"] == []
    assert "not trained on" not in result.stderr
    # a market's own model, pinned for the whole basket, trades markets it never saw: flagged
    single = run_trader("train", "--plugin", "dl_lstm", "--symbol", "AAA/USDT", *TINY, home=pooled_home, timeout=300)
    assert single.returncode == 0, single.stderr
    pinned = run_trader("backtest", "--plugin", "dl_lstm", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT",
                        "--model-version", "v1@AAA/USDT", "--from", "2024-01-27", "--json", home=pooled_home, timeout=300)
    assert pinned.returncode == 0, pinned.stderr
    assert json.loads(pinned.stdout)["model"]["mismatched"] == ["BBB/USDT"]
    assert "BBB/USDT" in pinned.stderr and "not trained on" in pinned.stderr


def test_model_lookup_prefers_the_exact_pool_then_each_markets_own_then_a_pool_holding_it(tmp_path):
    """Lookup order on stored versions, through the real persistence (tiny models trained in process)."""
    from trader.types import TrainRequest

    manager = TraderPluginManager(strategies=("dl_lstm",))
    strategy = manager.strategy("dl_lstm")
    store = ModelPersistence(tmp_path)
    frames = markets(400)

    def train(symbols: tuple[str, ...]) -> None:
        from trader.models import basket_symbol

        pooled = len(symbols) > 1
        name = basket_symbol(symbols) if pooled else symbols[0]
        request = TrainRequest("dl_lstm", name, "1h", frames[symbols[0]].iloc[:0] if pooled else frames[symbols[0]],
                               params=TINY_PARAMS, markets={s: frames[s] for s in symbols} if pooled else None)
        store.save(strategy, strategy.train(request), symbol=name, timeframe="1h", data_range=(0, 1), data_hash="x",
                   seed=0, markets={s: {"rows": len(frames[s])} for s in symbols} if pooled else None)

    train(("AAA/USDT", "BBB/USDT"))
    got = load_basket_models(strategy, tmp_path, ["AAA/USDT", "BBB/USDT"], "1h")
    assert got.sources == dict.fromkeys(("AAA/USDT", "BBB/USDT"), "AAA/USDT+BBB/USDT")
    assert got.models["AAA/USDT"] is got.models["BBB/USDT"]  # loaded once
    train(("AAA/USDT",))
    got = load_basket_models(strategy, tmp_path, ["AAA/USDT", "BBB/USDT"], "1h")
    assert got.sources["AAA/USDT"] == "AAA/USDT+BBB/USDT"  # the exact pool wins over the market's own
    train(("BBB/USDT", "CCC/USDT"))
    got = load_basket_models(strategy, tmp_path, ["AAA/USDT", "CCC/USDT"], "1h")
    assert got.sources == {"AAA/USDT": "AAA/USDT", "CCC/USDT": "BBB/USDT+CCC/USDT"}
    assert got.mismatched == () and got.warning("dl_lstm") is None
    pinned = load_basket_models(strategy, tmp_path, ["AAA/USDT", "CCC/USDT"], "1h", version="v1@BBB/USDT+CCC/USDT")
    assert pinned.mismatched == ("AAA/USDT",)
    assert pinned.warning("dl_lstm") == ("dl_lstm: model BBB/USDT+CCC/USDT v1 (trained on BBB/USDT, CCC/USDT) trades "
                                         "AAA/USDT, which it was not trained on")
    # a single market's model, as stored before pooled models existed, still loads and lists without markets
    [own] = [v for v in store.list("dl_lstm") if v.symbol == "AAA/USDT"]
    assert own.markets == ()
    assert "markets" not in json.loads((own.directory / "manifest.json").read_text())
    assert store.load(strategy, "AAA/USDT", "1h") is not None


# ----------------------------------------------------------------------------- walk-forward


def two_markets() -> dict:
    a = synthetic_candles("AAA/USDT", "1h", 900, seed=1)
    b = synthetic_candles("BBB/USDT", "1h", 800, seed=2).iloc[100:].reset_index(drop=True)
    b = b.drop(index=range(400, 420)).reset_index(drop=True)
    return {"AAA/USDT": a, "BBB/USDT": b}


def test_fold_training_candles_end_before_the_test_window_less_each_markets_own_purge():
    basket = align(two_markets(), "1h")
    from trader.backtest.walkforward import walk_forward_folds

    for fold in walk_forward_folds(len(basket), 300, 200):
        frames = fold_training_frames(basket, fold, gap=5)
        test_start = int(basket.timestamps[fold.test_start])
        for symbol, frame in frames.items():
            stamps = basket.frames[symbol]["timestamp"].to_numpy()
            before = stamps[(stamps < test_start) & (stamps >= basket.timestamps[fold.train_start])]
            assert len(frame) == max(0, len(before) - 5)  # its own last 5 rows purged
            assert frame["timestamp"].iloc[-1] < test_start


def test_basket_walk_forward_without_a_model(tmp_path):
    config = load_config(home=tmp_path)
    result = run_basket_walk_forward(TraderPluginManager(), config, "sma_cross", align(two_markets(), "1h"),
                                     WalkForwardPlan(300, 200, purge=2))
    data = result.to_dict()
    assert [f["test_rows"] for f in data["walk_forward"]["folds"]] == [200, 200, 200]
    assert data["range"]["steps"] == 600 and data["benchmark"] is not None
    assert all(f["trained_on"] == [] and f["traded"] == ["AAA/USDT", "BBB/USDT"] for f in data["walk_forward"]["folds"])
    assert data["fills"] > 0 and data["verdict"] is not None
    equity = result.result.run.equity
    stitched = np.prod([1 + f["test_return"] for f in data["walk_forward"]["folds"]]) - 1
    assert stitched == pytest.approx(equity[-1] / equity[0] - 1, rel=1e-9)
    assert "3 folds of 200 test steps" in result.describe()


@pytest.mark.slow
def test_basket_walk_forward_retrains_one_pooled_dl_lstm_per_fold(tmp_path):
    config = load_config(home=tmp_path)
    plan = WalkForwardPlan(300, 200, purge=12, train_params=TINY_PARAMS)
    result = run_basket_walk_forward(TraderPluginManager(), config, "dl_lstm", align(two_markets(), "1h"), plan)
    folds = result.to_dict()["walk_forward"]["folds"]
    assert len(folds) == 3 and all(f["trained_on"] == ["AAA/USDT", "BBB/USDT"] for f in folds)
    assert result.to_dict()["model"]["pooled"] is True
    assert all(f["baseline_return"] is not None for f in folds)
    json.dumps(result.to_dict(), allow_nan=False)


@pytest.mark.slow
def test_basket_walk_forward_through_trader_backtest(trader_home):
    store_markets(trader_home, two_markets())
    result = run_trader("backtest", "--plugin", "sma_cross", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT",
                        "--walk-forward", "--train-bars", "300", "--test-bars", "200", "--json", home=trader_home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert len(data["walk_forward"]["folds"]) == 3 and data["walk_forward"]["purge_bars"] == 24
    refused = run_trader("backtest", "--plugin", "sma_cross", "--symbol", "AAA/USDT", "--symbol", "BBB/USDT",
                         "--walk-forward", "--train-bars", "300", "--test-bars", "200", "--workers", "2",
                         home=trader_home)
    assert refused.returncode == 2 and "do not apply to a basket's walk-forward" in refused.stderr
    assert "Traceback" not in refused.stderr
