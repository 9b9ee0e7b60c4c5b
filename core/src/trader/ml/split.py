"""The chronological train / validation / test split of window ends, purged at each boundary."""

from __future__ import annotations

import numpy as np

from trader.ml.settings import DataSettings

__all__ = ["split_window_ends"]


def split_window_ends(ends: np.ndarray, settings: DataSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Chronological train/validation/test window ends with purge and embargo at each boundary.

    A training window's label reads ``label_horizon`` bars ahead; the next part's
    first window starts ``sequence_length - 1`` bars before its end row. Windows of
    the earlier part whose label reaches into the later part's first window (plus
    ``embargo`` bars) are dropped.
    """
    n = len(ends)
    n_test = int(round(n * settings.test_fraction))
    n_val = int(round(n * settings.val_fraction))
    train, val, test = ends[: n - n_val - n_test], ends[n - n_val - n_test : n - n_test], ends[n - n_test :]

    def purge(earlier: np.ndarray, later: np.ndarray) -> np.ndarray:
        if len(later) == 0:
            return earlier
        first_row_of_later = later[0] - settings.sequence_length + 1
        return earlier[earlier + settings.label_horizon + settings.embargo < first_row_of_later]

    return purge(train, val), purge(val, test), test
