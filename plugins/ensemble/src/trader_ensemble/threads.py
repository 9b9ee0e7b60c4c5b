"""Thread limits for scikit-learn's native thread pools (OpenMP, BLAS), via threadpoolctl."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

__all__ = ["limited_threads"]

_controller: Any = None


def _get_controller() -> Any:
    """One controller per process, made after scikit-learn has loaded its OpenMP runtime."""
    global _controller
    if _controller is None:
        import sklearn.ensemble  # noqa: F401  (loads libgomp, so the controller sees it)
        from threadpoolctl import ThreadpoolController

        _controller = ThreadpoolController()
    return _controller


@contextlib.contextmanager
def limited_threads(threads: int | None) -> Iterator[None]:
    """Run the block with at most ``threads`` native threads per pool; ``None`` leaves them as they are."""
    if threads is None:
        yield
        return
    with _get_controller().limit(limits=threads):
        yield
