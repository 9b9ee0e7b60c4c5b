"""``trader compare`` is ``trader backtest``'s twin: same costs, trades, Sharpe interval and verdict;
baselines once each; the majority baseline ranks nothing (AUC 0.5) and knows only the training labels."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_runner import run_trader
from hypothesis import given
from hypothesis import strategies as st

HERE = Path(__file__).parent
ENTRY_POINTS = """[trader.plugins]
fake_regime_a = compare_fakes:REGIME_A
fake_regime_b = compare_fakes:REGIME_B
fake_regime_h3 = compare_fakes:REGIME_H3
fake_regime_peek = compare_fakes:REGIME_PEEK
fake_regime_fragile = compare_fakes:REGIME_FRAGILE
"""
MARKET = ["--symbol", "SYN/USDT", "--timeframe", "1h"]
COSTS = ["--fee-bps", "25", "--slippage-bps", "7", "--spread-bps", "15", "--bootstrap", "300"]
ESTIMATED = ["--bootstrap", "300"]  # the spread estimated per candle from the candles before it


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A stored synthetic market and five trained fake models (distribution found through its entry points)."""
    root = tmp_path_factory.mktemp("compare_twin")
    dist = root / "site" / "trader_compare_fakes-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: trader-compare-fakes\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(ENTRY_POINTS)
    env = {"PYTHONPATH": f"{root / 'site'}:{HERE}"}
    home = root / "home"
    home.mkdir()
    synth = run_trader("data", "synth", *MARKET, "--bars", "1200", "--planted-signal", "0.3", "--bounce-bps", "8",
                       home=home)
    assert synth.returncode == 0, synth.stderr
    for name in ("fake_regime_a", "fake_regime_b", "fake_regime_h3", "fake_regime_peek", "fake_regime_fragile"):
        trained = run_trader("train", "--plugin", name, *MARKET, home=home, env=env)
        assert trained.returncode == 0, trained.stderr
    return home, env


def _json(*args: str, home: Path, env: dict[str, str]) -> dict:
    proc = run_trader(*args, "--json", home=home, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("costs", [COSTS, ESTIMATED], ids=["given costs", "estimated spread"])
def test_compare_reports_what_backtest_reports_for_each_strategy(home, costs):
    home, env = home
    compared = _json("compare", "--plugin", "fake_regime_a", *MARKET, *costs, home=home, env=env)
    rows = {row["plugin"]: row for row in compared["strategies"]}
    assert list(rows) == ["fake_regime_a", "buy_and_hold"]
    held = compared["held_out"]
    if costs is COSTS:
        assert (compared["costs"]["fee_bps"], compared["costs"]["slippage_bps"], compared["costs"]["spread_bps"]) == (25, 7, 15)
    else:
        assert compared["costs"]["spread_bps"] is None and compared["costs"]["spread_source"].startswith("estimated")
        assert compared["costs"]["spread_bps_median"] > 1  # the planted bounce: fills pay a real spread
    for name, row in rows.items():
        backtest = _json("backtest", "--plugin", name, *MARKET, *costs, "--from", str(held["start"]), "--to",
                         str(held["end"]), home=home, env=env)
        assert row["costs"] == {k: v for k, v in backtest["settings"].items() if k in row["costs"]}
        assert backtest["range"]["bars"] == held["rows"]
        assert row["trading"]["total_return"] == pytest.approx(backtest["metrics"]["total_return"], rel=1e-9, abs=1e-12)
        assert row["trading"]["trades"] == backtest["metrics"]["trades"]
        assert row["trading"]["sharpe"] == pytest.approx(backtest["metrics"]["sharpe"], rel=1e-9)
        assert row["significance"]["sharpe"] == pytest.approx(backtest["significance"]["sharpe"], rel=1e-9)
        assert row["trading"]["fees_paid"] == pytest.approx(backtest["metrics"]["fees_paid"], rel=1e-9)
        verdict = backtest.get("verdict") or backtest["significance"]["verdict"]
        assert row["verdict"] == verdict
        if name == "fake_regime_a":
            assert row["classification"] == backtest["classification"]
    # trades are round trips of fills, as backtest counts them: not position changes
    assert rows["fake_regime_a"]["trading"]["trades"] >= 10
    assert rows["buy_and_hold"]["trading"]["trades"] == 1


@pytest.mark.slow
def test_the_terminal_table_shows_sharpe_interval_verdict_and_costs(home):
    home, env = home
    proc = run_trader("compare", "--plugin", "fake_regime_a", *MARKET, *COSTS, home=home, env=env)
    assert proc.returncode == 0, proc.stderr
    data = _json("compare", "--plugin", "fake_regime_a", *MARKET, *COSTS, home=home, env=env)
    out = proc.stdout
    assert "costs: fees 25 bps, slippage 7 bps, spread 15 bps" in out
    row = next(line for line in out.splitlines() if line.startswith("fake_regime_a "))
    sharpe = data["strategies"][0]["significance"]["sharpe"]
    assert f"[{sharpe['low']:.2f}, {sharpe['high']:.2f}]" in row
    assert f"{data['strategies'][0]['trading']['sharpe']:.2f}" in row
    verdict = data["strategies"][0]["verdict"]
    assert (verdict["line"] if isinstance(verdict, dict) else verdict) in out
    # 360 held-out hours are 15 days: the annualised Sharpe is marked, not printed as if meaningful
    assert data["held_out"]["rows"] == 360
    assert "Sharpe*" in out and "* annualised figures extrapolate 15 days to a year" in out


@pytest.mark.slow
def test_baselines_appear_once_each(home):
    home, env = home
    proc = run_trader("compare", "--plugin", "fake_regime_a", "--plugin", "fake_regime_b", "--plugin", "buy_and_hold",
                      *MARKET, home=home, env=env)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert sum(line.startswith("buy_and_hold ") for line in lines) == 1
    rows = [line for line in lines if line.startswith("majority baseline ")]
    assert len(rows) == 1 and not any(line.startswith("majority #") for line in lines)  # both models share one
    assert "majority baseline: class " in proc.stdout and "training labels of fake_regime_a, fake_regime_b" in proc.stdout
    data = _json("compare", "--plugin", "fake_regime_a", "--plugin", "fake_regime_b", "--plugin", "fake_regime_h3",
                 *MARKET, home=home, env=env)
    assert [b["strategies"] for b in data["baselines"]] == [["fake_regime_a", "fake_regime_b"], ["fake_regime_h3"]]
    text = run_trader("compare", "--plugin", "fake_regime_a", "--plugin", "fake_regime_b", "--plugin", "fake_regime_h3",
                      *MARKET, home=home, env=env).stdout
    majority = [line for line in text.splitlines() if line.startswith("majority")]
    assert [line.split()[:2] for line in majority if "0.5000" in line] == [["majority", "#1"], ["majority", "#2"]]
    assert "majority #2: class" in text and "training labels of fake_regime_h3 (horizon 3" in text


@pytest.mark.slow
def test_the_majority_baseline_has_auc_one_half_and_its_class_from_the_training_labels(home):
    home, env = home
    manifest = json.loads((home / "models/fake_regime_a/SYN-USDT_1h/v1/manifest.json").read_text())
    counts = manifest["label"]["train_class_counts"]
    trained_majority = int(np.argmax(counts))
    compared = _json("compare", "--plugin", "fake_regime_a", *MARKET, home=home, env=env)
    [base] = compared["baselines"]
    cls = compared["strategies"][0]["classification"]
    scored = cls["class_counts"]
    assert base["metrics"]["roc_auc"] == 0.5
    assert base["majority_class"] == trained_majority
    # the planted training regime is the mirror image of the held-out rows: the labels being scored
    # have the other majority, so a baseline taken from them would score above one half
    assert scored[str(trained_majority)] < scored[str(1 - trained_majority)]
    assert base["metrics"]["accuracy"] == pytest.approx(scored[str(trained_majority)] / cls["n_samples"])
    assert base["metrics"]["accuracy"] < 0.5
    text = run_trader("compare", "--plugin", "fake_regime_a", *MARKET, home=home, env=env).stdout
    row = next(line for line in text.splitlines() if line.startswith("majority baseline"))
    assert row.split()[6] == "0.5000"  # the AUC column
    # a plain backtest takes its baseline from the training labels too
    held = compared["held_out"]
    backtest = _json("backtest", "--plugin", "fake_regime_a", *MARKET, "--from", str(held["start"]), home=home, env=env)
    assert backtest["classification"]["majority_class"] == trained_majority
    assert backtest["classification"]["baseline"] == base["metrics"]


# ------------------------------------------------------------------ in-process properties


@given(st.lists(st.tuples(st.integers(1, 60), st.floats(0.01, 0.99)), min_size=1, max_size=6), st.integers(0, 2**32 - 1))
def test_pooled_per_fold_priors_rank_nothing(folds, seed):
    """Walk-forward pools folds with their own training priors: the baseline's AUC is still 0.5."""
    from trader.evaluation.classification import prior_baseline

    rng = np.random.default_rng(seed)
    y = np.concatenate([(rng.random(n) < 0.5).astype(np.int64) for n, _ in folds])
    prior = np.concatenate([np.tile([1 - p, p], (n, 1)) for n, p in folds])
    metrics = prior_baseline(y, prior)
    assert metrics["roc_auc"] == (0.5 if np.unique(y).size == 2 else pytest.approx(np.nan, nan_ok=True))


def test_score_model_takes_the_baseline_from_the_training_split_when_counts_are_missing():
    import pandas as pd

    from trader.evaluation.scoring import score_model

    close = np.concatenate([np.linspace(100, 200, 80), np.linspace(200, 180, 40)])  # trained rising, scored falling
    candles = pd.DataFrame({"timestamp": np.arange(120, dtype=np.int64) * 3_600_000, "close": close})
    manifest = {"label": {"kind": "binary", "horizon": 1, "threshold": 0.0},
                "extra": {"split": {"train": {"first_end": 0, "last_end": 78 * 3_600_000}}}}
    rows = np.arange(80, 119)
    scored = score_model(manifest, candles, rows, np.full(rows.size, 0.4), "1h")
    assert scored["majority_class"] == 1 and scored["baseline"]["accuracy"] == 0.0  # trained up, scored all down
    assert "recomputed" in scored["baseline_source"]
    no_split = score_model({"label": manifest["label"]}, candles, rows, np.full(rows.size, 0.4), "1h")
    assert no_split["baseline"]["accuracy"] is None and no_split["baseline_source"].startswith("none")


@pytest.mark.slow
def test_the_models_own_test_split_is_out_of_sample_in_both_commands(home):
    """The test split was handed to training but never learnt from: compare's default range is out of
    sample, in compare and in backtest alike; a range reaching back into training is not."""
    home, env = home
    compared = _json("compare", "--plugin", "fake_regime_a", *MARKET, home=home, env=env)
    row = compared["strategies"][0]
    backtest = _json("backtest", "--plugin", "fake_regime_a", *MARKET, "--from", str(compared["held_out"]["start"]),
                     home=home, env=env)
    assert row["sample"] == backtest["sample"] == "out_of_sample"
    earlier = run_trader("compare", "--plugin", "fake_regime_a", *MARKET, "--from", "2024-01-20", home=home, env=env)
    assert earlier.returncode == 0, earlier.stderr
    assert "fake_regime_a: model v1: IN-SAMPLE: " in earlier.stdout


@pytest.mark.slow
def test_the_plausibility_warning_and_the_halt_reason_are_backtests(home):
    home, env = home
    compared = _json("compare", "--plugin", "fake_regime_peek", "--plugin", "fake_regime_fragile", *MARKET, home=home, env=env)
    rows = {row["plugin"]: row for row in compared["strategies"]}
    held = compared["held_out"]
    text = run_trader("compare", "--plugin", "fake_regime_peek", "--plugin", "fake_regime_fragile", *MARKET, home=home,
                      env=env).stdout
    for name in ("fake_regime_peek", "fake_regime_fragile"):
        backtest = _json("backtest", "--plugin", name, *MARKET, "--from", str(held["start"]), home=home, env=env)
        assert rows[name]["plausibility"] == backtest["plausibility"]
        assert rows[name]["risk"] == {k: backtest[k] for k in ("final_status", "halt", "denied_orders")}
    peek, fragile = rows["fake_regime_peek"], rows["fake_regime_fragile"]
    assert peek["plausibility"]["warning"] and f"fake_regime_peek: {peek['plausibility']['line']}" in text
    assert fragile["risk"]["final_status"] == "halted" and fragile["risk"]["halt"]["code"]
    assert "fake_regime_fragile: risk: final status halted since" in text and fragile["risk"]["halt"]["code"] in text


@pytest.mark.slow
def test_the_pooled_walk_forward_baseline_has_auc_one_half(home):
    """Each fold's baseline has its own training prior; pooled, the baseline still ranks nothing."""
    home, env = home
    data = _json("backtest", "--plugin", "fake_regime_a", *MARKET, "--walk-forward", "--train-bars", "300",
                 "--test-bars", "200", "--bootstrap", "200", "--no-progress", home=home, env=env)
    assert len(data["folds"]) >= 3
    assert data["classification"]["baseline"]["roc_auc"] == 0.5
