"""Portfolios: one strategy trading several markets from one account and one risk budget.

- :class:`PortfolioSession`: the per-step decision for a basket (shared by ``trader run``
  on several symbols and basket backtests).
- :func:`align` / :class:`Basket`: the markets on the union of their timestamps, with no
  invented bars.
- :func:`basket_signals`: per-market and cross-sectional strategies' signals for a range.
- :func:`run_basket_backtest`: a basket backtest against the equal-weight buy-and-hold basket.

See ``docs/portfolios.md``.
"""

from __future__ import annotations

from trader.portfolio.align import Basket, align
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.session import PORTFOLIO, PortfolioSession

__all__ = ["Basket", "BasketPaperBroker", "PORTFOLIO", "PortfolioSession", "align", "basket_signals", "run_basket_backtest"]


def __getattr__(name: str):  # the backtest pulls in pandas-heavy modules: import on use
    if name == "basket_signals":
        from trader.portfolio.signals import basket_signals

        return basket_signals
    if name == "run_basket_backtest":
        from trader.portfolio.backtest import run_basket_backtest

        return run_basket_backtest
    raise AttributeError(name)
