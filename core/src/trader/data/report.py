"""Plain-text rendering of import and download reports and of the dataset list."""

from __future__ import annotations

from collections.abc import Iterable

from trader.data.frame import format_ms
from trader.data.store import DatasetInfo, MergeResult
from trader.data.validate import Finding

__all__ = ["render_findings", "render_import", "render_download", "render_datasets"]

_MARK = {"info": "info", "warning": "warn"}


def render_findings(findings: Iterable[Finding]) -> list[str]:
    lines = []
    for finding in findings:
        lines.append(f"  [{_MARK[finding.severity]}] {finding.message}")
        lines.extend(f"         e.g. {example}" for example in finding.examples)
    return lines


def _stored(merge: MergeResult | None) -> str:
    if merge is None:
        return "dry run: nothing stored"
    info = merge.info
    return (
        f"stored {info.exchange} {info.symbol} {info.timeframe}: {merge.added:,} added, {merge.replaced:,} replaced, "
        f"{merge.unchanged:,} unchanged; now {info.rows:,} bars {format_ms(info.first)} .. {format_ms(info.last)}"
        + (f", {info.gaps:,} gaps" if info.gaps else "")
        + (f", {info.filled_bars:,} filled bars" if info.filled_bars else "")
    )


def render_import(result) -> list[str]:
    """Lines for a :class:`trader.data.ingest.ImportResult`."""
    report = result.report
    lines = [
        f"{report.source} ({report.format}): {report.rows_read:,} rows read, {report.rows_kept:,} bars kept, "
        f"{format_ms(report.first)} .. {format_ms(report.last)} UTC",
    ]
    lines.extend(render_findings(report.findings))
    lines.append(_stored(result.merge))
    return lines


def render_download(result) -> list[str]:
    """Lines for a :class:`trader.data.download.DownloadResult`."""
    lines = [
        f"{result.exchange} {result.symbol} {result.timeframe}: {result.pages:,} pages, {result.fetched:,} bars fetched "
        f"for {format_ms(result.start)} .. {format_ms(result.end)}; {result.added:,} added, {result.replaced:,} replaced",
    ]
    lines.extend(render_findings(result.findings))
    if result.dataset is not None:
        info = result.dataset
        lines.append(f"stored: {info.rows:,} bars {format_ms(info.first)} .. {format_ms(info.last)}")
    return lines


def render_datasets(infos: list[DatasetInfo]) -> list[str]:
    if not infos:
        return ["no stored datasets (add some with `trader data download`, `trader data import` or `trader data synth`)"]
    header = ("exchange", "symbol", "timeframe", "first", "last", "rows", "gaps")
    rows = [
        (i.exchange, i.symbol, i.timeframe, format_ms(i.first), format_ms(i.last), f"{i.rows:,}",
         f"{i.gaps:,}" + (f" ({i.filled_bars:,} filled)" if i.filled_bars else ""))
        for i in infos
    ]
    widths = [max(len(str(r[k])) for r in [header, *rows]) for k in range(len(header))]
    right = {5, 6}
    def fmt(row: tuple) -> str:
        return "  ".join(str(v).rjust(w) if k in right else str(v).ljust(w) for k, (v, w) in enumerate(zip(row, widths, strict=False))).rstrip()
    return [fmt(header), *(fmt(r) for r in rows)]
