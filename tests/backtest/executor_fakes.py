"""Hostile strategies for the executor tests: their training raises, or ends the process it runs in."""

from __future__ import annotations

import os

from backtest_fakes import Threshold

from trader import hookimpl


class TrainRaises(Threshold):
    @hookimpl
    def trader_train(self, request):
        raise RuntimeError("boom in fold training")


class TrainExits(Threshold):
    @hookimpl
    def trader_train(self, request):
        os._exit(7)  # no exception, no cleanup: the worker process is simply gone


TRAIN_RAISES = TrainRaises("fake_train_raises")
TRAIN_EXITS = TrainExits("fake_train_exits")
