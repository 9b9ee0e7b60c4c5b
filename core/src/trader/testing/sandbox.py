"""The sandbox a strategy is tested in, and the isolation verdict on what it wrote.

Shared by the conformance suite and ``trader check``: every call of the strategy runs
inside :meth:`Sandbox.phase`, with ``TRADER_HOME``, ``HOME``, the temporary folder and
the working folder pointing into a fresh folder, and every write recorded (see
:mod:`trader.testing.write_watch`). :func:`isolation_offences` lists the writes outside
the strategy's namespace, ``TRADER_HOME/strategies/NAME/`` and ``TRADER_HOME/models/NAME/``;
:func:`trade_through_run_loop` trades a few candles through ``trader run``'s loop there.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["Sandbox", "isolation_offences", "trade_through_run_loop"]

#: Cache folders of libraries a strategy commonly uses, moved into the sandbox with ``TMPDIR``.
_CACHE_FOLDERS = {"TORCHINDUCTOR_CACHE_DIR": "torchinductor", "TRITON_CACHE_DIR": "triton", "XDG_CACHE_HOME": "cache"}


def relative(path: Path, roots: Mapping[str, Path]) -> str:
    """``TRADER_HOME/notes.txt``: ``path`` named by the sandbox folder it lies in."""
    for label, root in roots.items():
        if path == root or root in path.parents:
            return f"{label}/{path.relative_to(root)}" if path != root else label
    return str(path)


class Sandbox:
    """Folders standing in for TRADER_HOME, the working folder, HOME and the temp folder."""

    def __init__(self, root: Path) -> None:
        from trader.testing.write_watch import _real

        self.root = _real(root)
        self.home = self.root / "trader_home"
        self.work = self.root / "cwd"
        self.user = self.root / "user_home"
        self.tmp = self.root / "tmp"
        for folder in (self.home, self.work, self.user, self.tmp):
            folder.mkdir(parents=True, exist_ok=True)
        self.logs: list[tuple[str, Any, tuple[Path, ...]]] = []

    @property
    def labels(self) -> dict[str, Path]:
        return {"TRADER_HOME": self.home, "CWD": self.work, "HOME": self.user, "TMPDIR": self.tmp}

    def environment(self) -> dict[str, str]:
        """The variables a process started for this sandbox sets (a fresh process runs there too).

        Libraries' cache folders point into the sandbox's temporary folder as well: torch keeps
        the first one it used in ``TORCHINDUCTOR_CACHE_DIR``, which a parent process may hand
        down, pointing at the real ``/tmp``.
        """
        return {"TRADER_HOME": str(self.home), "HOME": str(self.user), "TMPDIR": str(self.tmp),
                **{name: str(self.tmp / folder) for name, folder in _CACHE_FOLDERS.items()}}

    @contextmanager
    def phase(self, label: str, also_allowed: tuple[Path, ...] = ()) -> Iterator[None]:
        """Run the block with the sandbox's environment, recording its writes under ``label``.

        ``also_allowed`` are folders the core itself writes during this phase.
        """
        from trader.testing.write_watch import watch_writes

        saved_env = {k: os.environ.get(k) for k in self.environment()}
        saved_cwd, saved_tempdir = os.getcwd(), tempfile.tempdir
        os.environ.update(self.environment())
        tempfile.tempdir = str(self.tmp)
        os.chdir(self.work)
        try:
            with watch_writes([self.home, self.work, self.user, self.tmp]) as log:
                self.logs.append((label, log, also_allowed))
                yield
        finally:
            os.chdir(saved_cwd)
            tempfile.tempdir = saved_tempdir
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def isolation_offences(sandbox: Sandbox, name: str) -> list[str]:
    """``TRADER_HOME/notes.txt (open, during trader_generate_signals)`` for each write outside the namespace."""
    allowed = [sandbox.home / "strategies" / name, sandbox.home / "models" / name]
    offending: list[str] = []
    for label, log, also_allowed in sandbox.logs:
        for write in log.outside([*allowed, *also_allowed], transient=[sandbox.tmp]):
            offending.append(f"{relative(write.path, sandbox.labels)} ({write.how}, during {label})")
    return list(dict.fromkeys(offending))


def trade_through_run_loop(sandbox: Sandbox, manager: Any, name: str, info: Any, *, timeframe: str, symbol: str,
                           params: Mapping[str, Any], candles: int, bars: int, seed: int) -> str:
    """Trade ``candles`` candles past the warm-up through the real run loop (inline), in the sandbox.

    A model the strategy needs must lie in the sandbox's ``TRADER_HOME/models``. Raises what
    the run raises; returns ``trader run traded N candles`` or why the loop was skipped.
    """
    try:
        from trader.engine.runner import RunOptions, StrategyRunner
    except ImportError:  # a core without the run loop
        return "run loop unavailable"
    from trader.config import TraderConfig

    steps = info.warmup_bars + candles
    options = RunOptions(strategy=name, symbol=symbol, timeframe=timeframe, max_candles=steps,
                         synthetic_bars=max(bars, steps + 1), seed=seed, quiet=True)
    config = TraderConfig(home=sandbox.home, data={"plugins": {name: dict(params)}})
    core_writes = (sandbox.home / "data",)  # the core's candle store, if the feed fills it
    previous = logging.root.manager.disable
    logging.disable(logging.INFO)  # the run loop's step log is not the check's output
    try:
        with sandbox.phase("trader run", core_writes):
            summary = StrategyRunner(config, manager, options).run()
    finally:
        logging.disable(previous)
    return f"trader run traded {summary.processed} candles"
