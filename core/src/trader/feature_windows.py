"""The windows of the core features: the default set and the rule every set obeys.

One copy for the feature engineer (:mod:`trader.features.specs` re-exports both), the deep-learning
plugins and the ``ensemble``; a light module (no numpy), so a plugin's entry module can name the
default without loading :mod:`trader.features`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["DEFAULT_WINDOWS", "check_windows"]

#: Windows (in bars) of the core features when a strategy names none: 86 features.
DEFAULT_WINDOWS: tuple[int, ...] = (5, 10, 20, 50)


def check_windows(windows: Sequence[int]) -> None:
    """``ValueError`` unless *windows* are distinct integers >= 2, at least one."""
    if not windows:
        raise ValueError("windows must not be empty")
    for window in windows:
        if isinstance(window, bool) or not isinstance(window, int) or window < 2:
            raise ValueError(f"every window must be an integer >= 2, got {window!r}")
    if len(set(windows)) != len(windows):
        raise ValueError(f"windows must be distinct, got {list(windows)}")
