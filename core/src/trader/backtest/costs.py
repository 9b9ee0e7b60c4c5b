"""The cost model of backtests: an alias of :mod:`trader.costs` (the paper broker shares it)."""

from __future__ import annotations

from trader.costs import *  # noqa: F403
from trader.costs import __all__  # noqa: F401
