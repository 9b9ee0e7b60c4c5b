"""Downloading candles through ccxt into the store: paginated, resumable, patient with flaky networks.

- **Exchange**: :func:`make_exchange` builds the ccxt class named by ``--exchange`` or
  ``[exchange] id``, with the ``[exchange.ccxt]`` table passed verbatim to its constructor
  (only when it is for that exchange) and ccxt's rate limiter on; API keys come only from
  ``TRADER_API_KEY`` / ``TRADER_API_SECRET`` / ``TRADER_API_PASSWORD`` and are never logged.
- **Pages**: ``fetch_ohlcv(symbol, timeframe, since=cursor, limit=<the exchange's maximum>)``,
  the cursor moving past the last bar received, until ``until`` (exclusive; default: now) or
  an empty page. Only closed bars are stored (the bar in progress is left out).
- **Resume**: bars already stored are not fetched again: the download continues from the
  last stored bar (fetched again, in case it was incomplete) and, when ``since`` is earlier
  than the first stored bar, also fills in the range before it.
- **Retries**: the ccxt ``NetworkError`` family (timeouts, 5xx, 429/418 rate limiting, dropped
  connections) and malformed pages are retried with capped exponential backoff
  (``backoff * 2**attempt`` seconds, at most ``backoff_cap``, at least the ``Retry-After`` the
  exchange asked for) up to ``max_retries`` times in a row; then the download stops with
  what it has stored so far, and running it again resumes.
- **Refusals**: an ``ExchangeError`` (unknown symbol, unsupported timeframe, bad request)
  stops the download with a message listing valid choices where there are some.
- Every page is validated (:func:`trader.data.validate.validate_candles`) before it is
  stored; pages are written in batches, atomically, so an interrupted download leaves the
  store consistent.
"""

from __future__ import annotations

import difflib
import json
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from trader.data.frame import check_exchange, check_timeframe, format_ms, validate_market
from trader.data.importers import raw_from_rows
from trader.data.store import CandleStore, MergeResult
from trader.data.validate import Finding, ImportPolicy, validate_candles
from trader.errors import ConfigError, DataError, ExchangeError

if TYPE_CHECKING:
    from trader.config import TraderConfig

__all__ = ["make_exchange", "download_candles", "DownloadResult", "RetryPolicy"]

log = logging.getLogger("trader.data.download")

_FLUSH_ROWS = 50_000
_FLUSH_SECONDS = 10.0


def make_exchange(config: TraderConfig, exchange_id: str | None = None, *, credentials: bool = True) -> Any:
    """A ccxt exchange for *exchange_id* (default ``[exchange] id``), configured from ``trader.toml``.

    The ``[exchange.ccxt]`` table is applied when it belongs to that exchange (``[exchange] id``
    is unset or equal); ``enableRateLimit`` defaults to on; with *credentials*, API keys from the
    environment are added. :class:`ConfigError` when no exchange is named or ccxt does not know it.
    """
    import copy

    from trader.config import exchange_credentials

    wanted = exchange_id or config.exchange_id
    if not wanted:
        raise ConfigError("no exchange given: pass --exchange or set [exchange] id in trader.toml")
    try:
        wanted = check_exchange(wanted)
    except DataError as exc:
        raise ConfigError(str(exc)) from None
    import ccxt

    if wanted not in ccxt.exchanges:
        close = difflib.get_close_matches(wanted, ccxt.exchanges, n=5)
        hint = f"; did you mean {', '.join(close)}?" if close else " (see ccxt's list of exchanges)"
        raise ConfigError(f"unknown exchange {wanted!r}{hint}")
    options: dict[str, Any] = {}
    if config.exchange_id in (None, wanted):
        options = copy.deepcopy(config.ccxt_options())
    options.setdefault("enableRateLimit", True)
    if credentials:
        options.update(exchange_credentials())
    try:
        exchange = getattr(ccxt, wanted)(options)
    except Exception as exc:  # ccxt validates some options in its constructor
        from trader.log import mask_secrets

        raise ConfigError(f"[exchange.ccxt]: ccxt refused the options for {wanted}: {mask_secrets(_short(exc))}") from None
    from trader.log import route_ccxt_output

    return route_ccxt_output(exchange)  # verbose = true prints signed requests: masked, on stderr


@attrs.frozen
class RetryPolicy:
    """Capped exponential backoff for the ccxt ``NetworkError`` family."""

    max_retries: int = attrs.field(default=5, validator=attrs.validators.ge(0))
    backoff: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    backoff_cap: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number *attempt* (0-based)."""
        wait = min(self.backoff_cap, self.backoff * (2**attempt))
        if retry_after is not None:
            wait = max(wait, min(retry_after, max(self.backoff_cap, 1.0) * 10))
        return wait


@attrs.frozen
class DownloadResult:
    exchange: str
    symbol: str
    timeframe: str
    start: int
    end: int
    pages: int
    fetched: int
    added: int
    replaced: int
    retries: dict[str, int]
    findings: tuple[Finding, ...]
    dataset: Any = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "exchange": self.exchange,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": format_ms(self.start),
            "end": format_ms(self.end),
            "pages": self.pages,
            "fetched": self.fetched,
            "added": self.added,
            "replaced": self.replaced,
            "retries": dict(self.retries),
            "findings": [f.as_dict() for f in self.findings],
            "dataset": self.dataset.as_dict() if self.dataset is not None else None,
        }


class _Malformed(Exception):
    """A page that is not a list of [timestamp, open, high, low, close, volume] rows."""


def download_candles(
    exchange: Any,
    store: CandleStore,
    symbol: str,
    timeframe: str,
    since: int,
    until: int | None = None,
    *,
    exchange_id: str | None = None,
    policy: ImportPolicy | None = None,
    retry: RetryPolicy | None = None,
    page_limit: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadResult:
    """Download ``[since, until)`` of *symbol* candles from the ccxt *exchange* into *store*.

    *progress* is called with ``(bars done, bars expected)`` after every page.
    Raises :class:`ExchangeError` when the exchange refuses or stays unreachable, after
    storing every page received before that.

    The stages: open the market (:func:`_open_market`), find the ranges not stored yet
    (:func:`_ranges_to_fetch`), fetch them page by page into a :class:`_PageWriter`
    (:func:`_fetch_ranges`, a failure mapped to one line by :func:`_download_failure`), then
    summarise (:func:`_download_findings`).
    """
    exchange_id = check_exchange(exchange_id or exchange.id)
    symbol, timeframe = validate_market(symbol, timeframe)
    step = check_timeframe(timeframe)
    policy = policy or ImportPolicy()
    retry = retry or RetryPolicy()
    retries: dict[str, int] = {}
    caller = _Caller(exchange, retry, retries, sleep)
    _open_market(caller, exchange, symbol, timeframe, retry)
    now = int(exchange.milliseconds())
    closed_end = (now // step) * step  # the bar opening here is still in progress
    end = closed_end if until is None else min(int(until), closed_end)
    start = since - since % step if since % step else since
    ranges = _ranges_to_fetch(store, exchange_id, symbol, timeframe, start, end)
    writer = _PageWriter(store, exchange_id, symbol, timeframe)
    expected = sum(max(0, (b - a + step - 1) // step) for a, b in ranges)
    try:
        _fetch_ranges(caller, exchange, symbol, timeframe, ranges, page_limit or _max_page(exchange), policy, writer,
                      lambda done: progress(min(done, expected), expected) if progress else None)
    except BaseException as exc:  # Ctrl-C included: keep what arrived
        writer.flush()
        failure = _download_failure(exc, exchange, symbol, timeframe, retry)
        if failure is None:
            raise
        raise failure from None
    writer.flush()
    if progress and writer.done < expected:
        progress(writer.done, writer.done)  # the exchange had no more bars: the download is complete
    dataset = store.info(exchange_id, symbol, timeframe) if store.exists(exchange_id, symbol, timeframe) else None
    return DownloadResult(
        exchange=exchange_id,
        symbol=symbol,
        timeframe=timeframe,
        start=start,
        end=end,
        pages=writer.pages,
        fetched=writer.fetched,
        added=writer.added,
        replaced=writer.replaced,
        retries=retries,
        findings=_download_findings(writer, dataset, retries),
        dataset=dataset,
    )


def _open_market(caller: _Caller, exchange: Any, symbol: str, timeframe: str, retry: RetryPolicy) -> None:
    """Load the exchange's markets; refuse a symbol or timeframe it does not offer."""
    import ccxt

    try:
        caller.call(exchange.load_markets)
    except ccxt.NetworkError as exc:
        raise ExchangeError(_unreachable(exchange, retry, exc)) from None
    except _Malformed as exc:
        raise ExchangeError(f"{exchange.id}: the market list is malformed ({exc}); try again later") from None
    except ccxt.ExchangeError as exc:
        raise ExchangeError(f"{exchange.id} refused to list its markets: {_short(exc)}") from None
    if symbol not in (exchange.markets or {}):
        raise ExchangeError(_unknown_symbol(exchange, symbol))
    if getattr(exchange, "timeframes", None) and timeframe not in exchange.timeframes:
        raise ExchangeError(
            f"{exchange.id} does not offer {timeframe} candles; valid timeframes: {', '.join(exchange.timeframes)}"
        )


class _PageWriter:
    """Validated pages buffered and written to the store in batches (atomically, so an interrupted
    download leaves it consistent), with the counts the result reports."""

    def __init__(self, store: CandleStore, exchange_id: str, symbol: str, timeframe: str) -> None:
        self.store, self.key = store, (exchange_id, symbol, timeframe)
        self.buffer: list[Any] = []
        self.last_flush = time.monotonic()
        self.pages = self.fetched = self.done = self.added = self.replaced = 0
        self.invalid_dropped = self.duplicates = 0

    def add(self, rows: list[list[Any]], source: str, policy: ImportPolicy) -> None:
        """Validate one page's rows and buffer them; flush when the buffer is large or old."""
        self.fetched += len(rows)
        clean = validate_candles(raw_from_rows(rows, source, fmt="ccxt-download"), self.key[2], _page_policy(policy))
        for finding in clean.report.findings:
            if finding.code == "invalid":
                self.invalid_dropped += finding.count
            elif finding.code == "duplicates":
                self.duplicates += finding.count
        if len(clean.candles):
            self.buffer.append(clean.candles)
        self.done += len(rows)
        if sum(len(b) for b in self.buffer) >= _FLUSH_ROWS or time.monotonic() - self.last_flush > _FLUSH_SECONDS:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        import pandas as pd

        batch = pd.concat(self.buffer, ignore_index=True).drop_duplicates("timestamp", keep="last")
        batch = batch.sort_values("timestamp", ignore_index=True)
        merge: MergeResult = self.store.write(*self.key, batch)
        self.added += merge.added
        self.replaced += merge.replaced
        self.buffer = []
        self.last_flush = time.monotonic()


def _fetch_ranges(caller: _Caller, exchange: Any, symbol: str, timeframe: str, ranges: list[tuple[int, int]],
                  limit: int | None, policy: ImportPolicy, writer: _PageWriter, progress: Callable[[int], None]) -> None:
    """Fetch each ``[start, end)`` page by page, the cursor moving past the last bar received,
    until the range's end or an empty page."""
    step = check_timeframe(timeframe)
    for range_start, range_end in ranges:
        cursor = range_start
        while cursor < range_end:
            rows = caller.call(_fetch_page, exchange, symbol, timeframe, cursor, limit)
            writer.pages += 1
            rows = [r for r in rows if cursor <= r[0] < range_end]
            if not rows:
                break
            writer.add(rows, f"{exchange.id} {symbol} {timeframe} page from {format_ms(cursor)}", policy)
            progress(writer.done)
            last = max(r[0] for r in rows)
            if last + step <= cursor:
                break
            cursor = last + step


def _download_failure(exc: BaseException, exchange: Any, symbol: str, timeframe: str, retry: RetryPolicy) -> ExchangeError | None:
    """The one line a failed download ends with (what arrived is stored); ``None``: re-raise ``exc`` as it is."""
    import ccxt

    resume = "what arrived is stored, run the same command again to resume"
    if isinstance(exc, ccxt.NetworkError):
        return ExchangeError(f"{_unreachable(exchange, retry, exc)}; {resume}")
    if isinstance(exc, _Malformed):
        return ExchangeError(f"{exchange.id}: giving up after {retry.max_retries} retries: malformed response ({exc}); {resume}")
    if isinstance(exc, ccxt.BadSymbol):
        return ExchangeError(_unknown_symbol(exchange, symbol))
    if isinstance(exc, ccxt.ExchangeError):
        text = _short(exc)
        if "interval" in text.lower() or "timeframe" in text.lower():
            choices = ", ".join(getattr(exchange, "timeframes", None) or [])
            return ExchangeError(f"{exchange.id} refused {timeframe} candles ({text}); valid timeframes: {choices}")
        return ExchangeError(f"{exchange.id} refused the request: {text}")
    return None  # ValidationError, Ctrl-C and anything else


def _download_findings(writer: _PageWriter, dataset: Any, retries: dict[str, int]) -> tuple[Finding, ...]:
    """What the download dropped and retried, and the gaps left in the stored dataset."""
    findings: list[Finding] = []
    if writer.invalid_dropped:
        findings.append(Finding("invalid", "warning", writer.invalid_dropped, f"dropped {writer.invalid_dropped:,} invalid bars"))
    if writer.duplicates:
        findings.append(Finding("duplicates", "warning", writer.duplicates, f"{writer.duplicates:,} duplicate timestamps in pages (resolved)"))
    if dataset is not None and dataset.gaps:
        findings.append(
            Finding("gaps", "warning", dataset.gaps, f"the stored dataset has {dataset.gaps:,} gaps, {dataset.missing_bars:,} missing bars (not filled)")
        )
    if retries:
        total = sum(retries.values())
        parts = ", ".join(f"{n} {name}" for name, n in sorted(retries.items()))
        findings.append(Finding("retries", "info", total, f"{total} retried requests ({parts})"))
    return tuple(findings)


def _page_policy(policy: ImportPolicy) -> ImportPolicy:
    # spikes need the whole series, not one page; gaps between pages are filled by the next page
    return attrs.evolve(policy, fill_gaps=False, drop_outliers=False, outlier_threshold=1e12)


def _ranges_to_fetch(store: CandleStore, exchange_id: str, symbol: str, timeframe: str, start: int, end: int) -> list[tuple[int, int]]:
    if not store.exists(exchange_id, symbol, timeframe):
        return [(start, end)] if start < end else []
    info = store.info(exchange_id, symbol, timeframe)
    if info.first is None or info.last is None:
        return [(start, end)] if start < end else []
    ranges = []
    if start < info.first:
        ranges.append((start, min(info.first, end)))
    resume = max(start, info.last)
    if resume < end:
        ranges.append((resume, end))
    return ranges


def _max_page(exchange: Any) -> int | None:
    features = getattr(exchange, "features", None) or {}
    spot = features.get("spot") or {}
    limit = (spot.get("fetchOHLCV") or {}).get("limit")
    return int(limit) if limit else None


def _fetch_page(exchange: Any, symbol: str, timeframe: str, since: int, limit: int | None) -> list[list[Any]]:
    rows = exchange.fetch_ohlcv(symbol, timeframe, since=since, limit=limit)
    if not isinstance(rows, list):
        raise _Malformed(f"expected a list of candles, got {type(rows).__name__}")
    if not rows:
        # ccxt turns an unparseable body into an empty page; tell it from a real end of data
        body = getattr(exchange, "last_http_response", None)
        if isinstance(body, str) and body.strip():
            try:
                json.loads(body)
            except ValueError:
                raise _Malformed(f"body is not JSON: {body[:60]!r}") from None
    for i, row in enumerate(rows):
        if (
            not isinstance(row, (list, tuple))
            or len(row) < 6
            or not isinstance(row[0], int)
            or isinstance(row[0], bool)
            or any(v is None for v in row[1:5])
        ):
            raise _Malformed(f"row {i + 1}: {str(row)[:60]}")
    return [list(row[:6]) for row in rows]


class _Caller:
    """Calls into ccxt, retrying the NetworkError family and malformed pages with backoff."""

    def __init__(self, exchange: Any, retry: RetryPolicy, counts: dict[str, int], sleep: Callable[[float], None]) -> None:
        self.exchange, self.retry, self.counts, self.sleep = exchange, retry, counts, sleep

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        import ccxt

        attempt = 0
        while True:
            try:
                return fn(*args)
            except (ccxt.NetworkError, _Malformed) as exc:
                if attempt >= self.retry.max_retries:
                    raise
                name = type(exc).__name__.lstrip("_")
                self.counts[name] = self.counts.get(name, 0) + 1
                wait = self.retry.delay(attempt, self._retry_after(exc))
                log.warning("%s: %s; retry %d/%d in %.1fs", self.exchange.id, name, attempt + 1, self.retry.max_retries, wait)
                self.sleep(wait)
                attempt += 1

    def _retry_after(self, exc: Exception) -> float | None:
        import ccxt

        if not isinstance(exc, ccxt.DDoSProtection):
            return None
        headers = getattr(self.exchange, "last_response_headers", None) or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


def _unknown_symbol(exchange: Any, symbol: str) -> str:
    symbols = sorted(exchange.symbols or (exchange.markets or {}).keys())
    close = difflib.get_close_matches(symbol, symbols, n=8, cutoff=0.5)
    if close:
        listing = f"similar: {', '.join(close)}"
    else:
        listing = f"valid symbols include: {', '.join(symbols[:20])}{', ...' if len(symbols) > 20 else ''}"
    count = f"{len(symbols):,} market{'' if len(symbols) == 1 else 's'}"
    return f"{exchange.id} has no market {symbol} ({count}; {listing})"


def _unreachable(exchange: Any, retry: RetryPolicy, exc: Exception) -> str:
    return (
        f"{exchange.id}: cannot reach the exchange, giving up after {retry.max_retries} retries "
        f"({type(exc).__name__}: {_short(exc)}); check the network connection (and [exchange.ccxt] urls / proxies)"
    )


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 200 else text[:197] + "..."
