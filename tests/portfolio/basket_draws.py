"""What the basket fast-path property tests draw (``test_portfolio_fastpath.py``, ``test_portfolio_fastbasket.py``):
random baskets with signal streams, limits and paper brokers, the sessions they run and what is compared."""

from __future__ import annotations

import math

import pandas as pd
from hypothesis import strategies as st

from trader.costs import CostModel, SpreadTable
from trader.engine import MemoryState, PaperBroker, RiskAuditAgent
from trader.errors import PluginError
from trader.plugins import TraderPluginManager
from trader.portfolio.align import align
from trader.portfolio.broker import BasketPaperBroker
from trader.portfolio.session import PortfolioSession
from trader.types import RiskLimits, Signal, SignalAction

HOUR = 3_600_000
T0 = 1_704_067_200_000 + 5 * HOUR  # not on a day boundary
MANAGER = TraderPluginManager(load_entrypoints=False, disabled=())
SYMBOLS = ("AAA/USDT", "BBB/USDT", "CCC/USDT", "DDD/USDT")
SIZES = st.sampled_from([1.0, 0.5, 0.25, 0.999]) | st.floats(0.0, 1.0)


def forged() -> Signal:
    signal = Signal(SignalAction.BUY)
    object.__setattr__(signal, "size", 7.0)  # changed after construction: INVALID_SIGNAL
    return signal


def signal_of(kind: str, size: float):
    return {
        "none": lambda: None,
        "hold": Signal.hold,
        "buy": lambda: Signal(SignalAction.BUY, size=size),
        "sell": lambda: Signal(SignalAction.SELL, size=size),
        "invalid": lambda: ValueError("bad signal"),
        "crash": lambda: PluginError("plugin crashed"),
        "forged": forged,
    }[kind]()


@st.composite
def baskets(draw, kinds: list[str], max_steps: int, delisted: bool = False):
    """Frames of 1-4 markets on an hourly clock with day gaps (``delisted``: a market may end before the
    timeline does), aligned, and each step's signals (streams of ``kinds``)."""
    n = draw(st.integers(2, max_steps))
    gaps = dict(draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from([2, 30, 500])), max_size=3)))
    clock, t = [], T0
    for i in range(n):
        t += gaps.get(i, 1) * HOUR
        clock.append(t)
    m = draw(st.integers(1, 4))
    one_clock = draw(st.booleans())  # every market has every candle (align's shared timeline)
    frames = {}
    for symbol in SYMBOLS[:m]:
        first = 0 if one_clock else draw(st.integers(0, n - 1))  # listed late
        end = draw(st.integers(first + 1, n)) if delisted and not one_clock else n
        holes = set() if one_clock else set(draw(st.lists(st.integers(first, end - 1), max_size=n // 3)))
        rows = [i for i in range(first, end) if i not in holes] or [first]
        price = draw(st.floats(0.5, 50_000.0))
        crashes = set(draw(st.lists(st.sampled_from(rows), max_size=2)))
        closes = []
        for i in rows:
            price *= math.exp(draw(st.floats(-0.03, 0.03))) * (0.5 if i in crashes else 1.0)
            closes.append(price)
        frames[symbol] = pd.DataFrame({"timestamp": [clock[i] for i in rows], "open": closes, "high": closes,
                                       "low": closes, "close": closes, "volume": 1.0})
    basket = align(frames, "1h")
    streams = {}
    for symbol in SYMBOLS[:m]:
        stretches = draw(st.lists(st.tuples(st.sampled_from(kinds), SIZES, st.integers(1, 40)), min_size=1, max_size=8))
        shared = draw(st.booleans())
        out = []
        for kind, size, count in stretches:
            count = 1 if kind in ("invalid", "crash", "forged") else count
            one = signal_of(kind, size)
            out.extend(one if shared else signal_of(kind, size) for _ in range(count))
        streams[symbol] = (out * (len(basket) // len(out) + 1))[: len(basket)]
    signals = [{s: streams[s][i] for s in streams if streams[s][i] is not None} for i in range(len(basket))]
    return basket, signals


def limits(gross_exposures: list[float]):
    """Random limits, tight ones included."""
    return st.builds(
        RiskLimits,
        max_position_fraction=st.sampled_from([1.0, 0.5, 0.3]),
        max_position_notional=st.sampled_from([50_000.0, 3_000.0, 1e15]),
        max_order_notional=st.sampled_from([10_000.0, 1_000.0, 1e15]),
        daily_loss_limit=st.sampled_from([0.02, 0.1, 1.0]),
        max_drawdown=st.sampled_from([0.1, 0.3, 1.0]),
        max_consecutive_losses=st.sampled_from([2, 5, 1000]),
        max_model_failures=st.sampled_from([2, 3, 100]),
        max_errors=st.sampled_from([1, 5]),
        max_gross_exposure=st.sampled_from(gross_exposures),
        max_open_positions=st.sampled_from([20, 2, 1]),
    )


@st.composite
def brokers(draw):
    """A paper broker per market: fees, slippage, lots, minimum notionals and a fixed spread."""
    fee, slippage = draw(st.sampled_from([0.0, 10.0, 75.0])), draw(st.sampled_from([0.0, 2.0, 30.0]))
    template = PaperBroker(fee_bps=fee, slippage_bps=slippage, lot_size=draw(st.sampled_from([0.0, 1e-8, 0.01])),
                           min_notional=draw(st.sampled_from([0.0, 5.0, 200.0])))
    spread = draw(st.sampled_from([0.0, 8.0, 60.0]))
    return lambda symbols: BasketPaperBroker(
        {s: template.with_spreads(SpreadTable(CostModel(fee, slippage, spread))) for s in symbols})


def session(basket, limits, make_broker, band, rules=()) -> PortfolioSession:
    """A fresh basket account on an in-memory store (``rules``: plugin risk rules, ``(name, rule)``)."""
    audit = RiskAuditAgent(MANAGER.subset_hook("trader_audit_order", []), "bench", limits, extra_rules=list(rules))
    return PortfolioSession("bench", basket.symbols, "1h", limits=limits, broker=make_broker(basket.symbols),
                            store=MemoryState("bench"), audit=audit, rebalance_band=band, latency_denies=False)


def outcome(session: PortfolioSession) -> dict:
    """Everything a run leaves: the store's steps, market rows, orders, fills, events and account, the session's state."""
    store = session.store
    store.flush()
    return {
        "steps": (store.timestamps, store.closes, store.equities, store.cash_values, store.position_values),
        "markets": store.market_history(),
        "fills": store.fills(),
        "orders": [(o.order, o.status, o.filled_quantity, o.message) for o in store.orders()],
        "events": store.risk_events(),
        "summary": store.summary(),
        "session": session.summary(),
        "market_last": dict(session.market_last),
        "state": (session.status, session.status_reason, session.peak_equity, session._day, session._day_start,
                  session.consecutive_losses, session.model_failures, session._last_ts, list(session._errors)),
    }
