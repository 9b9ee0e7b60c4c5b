"""The conformance suite as a pytest test class: one test per check.

A plugin's test module needs one line::

    TestConformance = conformance_tests("my_strategy", train_params={"epochs": 1})

The class runs :data:`~trader.testing.conformance.CHECKS` as ``test_metadata``,
``test_signals``, ... against the installed plugin (or a module/object passed
instead of the name); a failing check fails its test with the reason and no
traceback. The model is trained once per class and shared by the checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from trader.testing.conformance import CHECKS, ConformanceRun, ConformanceSettings

__all__ = ["conformance_tests"]

_DOCS = {
    "metadata": "trader_strategy_info returns valid, stable metadata naming the plugin.",
    "signals": "One valid Signal per requested row, batched and alone; inputs left untouched.",
    "lookahead": "The signal for row t does not change when rows after t are removed.",
    "determinism": "The same request, and a retraining with the same seed, give the same signals.",
    "persistence": "A model saved with ModelPersistence and loaded back gives the same signals.",
    "isolation": "Everything the plugin writes lies under strategies/NAME/ or models/NAME/.",
}


def _make_test(check: str) -> Callable[[Any, ConformanceRun | str], None]:
    def test(self: Any, trader_conformance_run: ConformanceRun | str) -> None:
        if isinstance(trader_conformance_run, str):  # the plugin could not even be loaded
            pytest.fail(trader_conformance_run, pytrace=False)
        result = trader_conformance_run.result(check)
        if result.outcome == "skipped":
            pytest.skip(result.message)
        if result.outcome == "failed":
            pytest.fail(f"conformance check {check!r} of strategy {trader_conformance_run.name!r} failed: {result.message}",
                        pytrace=False)

    test.__name__ = f"test_{check}"
    test.__doc__ = _DOCS[check]
    return test


def conformance_tests(
    plugin: object | str,
    name: str | None = None,
    *,
    settings: ConformanceSettings | None = None,
    **options: Any,
) -> type:
    """A pytest test class running the conformance suite on ``plugin``.

    ``plugin`` is the name of an installed plugin (its ``trader.plugins`` entry
    point, which is then checked too) or the plugin module/object itself;
    ``options`` are :class:`~trader.testing.conformance.ConformanceSettings`
    fields, e.g. ``train_params={"epochs": 1}`` for a fast training.
    """
    settings = settings or ConformanceSettings(**options)

    class TestConformance:
        @pytest.fixture(scope="class")
        @classmethod
        def trader_conformance_run(cls, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConformanceRun | str]:
            try:
                run = ConformanceRun(plugin, name, settings, tmp_path_factory.mktemp("conformance"))
            except Exception as exc:
                yield f"cannot run the conformance suite on {name or plugin!r}: {exc}"
                return
            try:
                yield run
            finally:
                run.close()

    for check in CHECKS:
        setattr(TestConformance, f"test_{check}", _make_test(check))
    label = name or (plugin if isinstance(plugin, str) else getattr(plugin, "__name__", type(plugin).__name__))
    TestConformance.__doc__ = f"The trader conformance suite for {label}."
    return TestConformance
