"""``trader serve``: a dashboard and a JSON API over every strategy under ``TRADER_HOME``.

Needs the ``serve`` extra (``pip install 'trader-core[serve]'``: Starlette and uvicorn).
The state files are read without writing; halting and resuming go through the engine's
request path (:mod:`trader.engine.control`) and need the operator token. See ``docs/serve.md``.
"""

from __future__ import annotations

__all__ = ["create_app", "ServeContext", "StateReader", "OperatorToken", "operator_token", "check_bind"]


def __getattr__(name: str):  # Starlette is imported only when the server is built
    if name in ("create_app", "ServeContext"):
        from trader.serve import app

        return getattr(app, name)
    if name == "StateReader":
        from trader.serve.reader import StateReader

        return StateReader
    if name in ("OperatorToken", "operator_token", "check_bind"):
        from trader.serve import auth

        return getattr(auth, name)
    raise AttributeError(name)
