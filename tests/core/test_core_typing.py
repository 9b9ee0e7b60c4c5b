"""What a plugin author's type checker sees: constructor types kept through the attrs converters,
``request.at`` one array type, the lazy exports declared. Runs mypy with the project's settings."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("mypy", reason="mypy is not installed (the lint extra)")

ROOT = Path(__file__).resolve().parents[2]

AUTHOR = textwrap.dedent("""
    import pandas as pd

    from trader import Signal, SignalAction, SignalRequest
    from trader.ml import TrainConfig
    from trader.testing import run_conformance
    from trader.types import OrderRequest, RiskVerdict, Side, TradingStatus

    Signal("buy", confidence=0.5)
    Signal(SignalAction.SELL)
    OrderRequest("s", "BTC/USDT", "buy", 1.0, 100.0, "trd-1", 0, order_type="limit", limit_price=99.0)
    OrderRequest("s", "BTC/USDT", Side.SELL, 1.0, 100.0, "trd-2", 0)
    RiskVerdict.deny("rule", "CODE", status="halted")
    RiskVerdict(False, "rule", [], TradingStatus.HALTED)
    request = SignalRequest("s", "BTC/USDT", "1h", pd.DataFrame(), at=[1, 2])
    reveal_type(request.at)
    reveal_type(Signal.__init__)
    reveal_type(TrainConfig)
    reveal_type(run_conformance)
    Signal(3)  # E: not an action
""")


@pytest.mark.slow
def test_a_plugin_authors_checker_sees_the_constructor_types_and_one_type_of_at(tmp_path):
    author = tmp_path / "author_plugin.py"
    author.write_text(AUTHOR, encoding="utf-8")
    result = subprocess.run([sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
                             "--cache-dir", str(tmp_path / "cache"), str(author)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    out = result.stdout
    notes = [line for line in out.splitlines() if "note: Revealed type" in line]
    assert notes[0].endswith('"numpy.ndarray[tuple[Any, ...], numpy.dtype[numpy.signedinteger[numpy._typing._nbit_base._64Bit]]]"'), out
    assert "action: trader.types.SignalAction | str," in notes[1], out
    assert "trader.ml.training.TrainConfig" in notes[2] and "trader.testing.conformance" in notes[3], out
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert len(errors) == 1 and f"{author.name}:{AUTHOR.splitlines().index('Signal(3)  # E: not an action') + 1}:" in errors[0], out
