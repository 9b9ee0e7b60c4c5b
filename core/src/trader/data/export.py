"""Writing a candle frame to a file that ``trader data import`` reads back."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from trader.data.frame import check_candles
from trader.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["write_candles_file"]


def write_candles_file(df: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write *df* by extension: ``.csv`` (``timestamp`` in ms plus the five fields),
    ``.parquet``, ``.feather`` (freqtrade layout: ``date`` in UTC) or ``.json`` (ccxt lists)."""
    import json

    import pandas as pd

    check_candles(df, "candles")
    path = Path(path)
    suffix = path.suffix.lower()
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        df.to_csv(path, index=False, float_format="%.10g")
    elif suffix in (".parquet", ".pq"):
        df.to_parquet(path, index=False)
    elif suffix == ".feather":
        out = df.drop(columns="timestamp")
        out.insert(0, "date", pd.to_datetime(df["timestamp"], unit="ms", utc=True))
        out.to_feather(path)
    elif suffix == ".json":
        path.write_text(json.dumps(df.astype(object).values.tolist()))
    else:
        raise ConfigError(f"{path}: unknown file type {suffix or '(none)'} (use .csv, .parquet, .feather or .json)")
    return path
